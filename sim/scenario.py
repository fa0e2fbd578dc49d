"""Scenario files: one TOML file says what to run, what to break and what must hold.

    name = "partition-heal"
    duration = 180           # virtual seconds in sim
    seed = 1                 # default seed

    [fleet]                  # the reference fleet (system.fleet.FleetConfig)
    rooms = 2
    sensors_per_room = 2

    [[faults]]               # explicit faults; Toxiproxy's vocabulary for links
    at = 60
    duration = 20
    kind = "partition"
    a = ["sensor-r1-1"]
    b = ["broker"]

    [swarm]                  # or random faults drawn from the seed
    kinds = ["toxic", "partition", "crash"]

    [checks]                 # thresholds (sim.checks.CheckConfig)
    max_qos1_lost = 0

    [[services]]             # your own services (sim.services.ServiceSet); without [fleet]
    name = "counter"         # a scenario with services runs only them (and the broker)
    entry = "myapp.counter:main"

Shipped scenarios live in `sim/scenarios/` and are named without the extension.
"""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from sim.checks import CheckConfig
from sim.errors import BadInput
from sim.faults.schedule import Schedule, SwarmMix, TimedFault, swarm_schedule
from sim.services import ServiceSet, check_sets

# Hosts squall itself runs; user services may not take these names.
RESERVED_HOSTS = {"broker", "monitor", "watcher", "main"}


class NetworkParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    latency_ms: float = Field(0.5, ge=0)
    jitter_ms: float = Field(0.2, ge=0)
    tick_ms: float = Field(0.5, ge=0, description="arrival grid; 0 = exact times")
    user_timeout_s: float = Field(30.0, gt=0)


class BrokerParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    flavor: Literal["squall", "amqtt"] = "squall"
    durable: bool = Field(True, description="sessions and retained messages survive a broker crash, as with durable storage (squall flavor)")


class ChaosParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    duration: float = Field(20.0, gt=0, description="wall seconds of a chaos run (faults are scaled to fit)")
    sample_every: float = Field(1.0, gt=0, description="seconds between memory samples")


class Workload(BaseModel):
    """Extra load beside the fleet (a churning subscriber, a silent device)."""

    model_config = ConfigDict(extra="forbid")

    churn_subscriber: bool = Field(False, description="a QoS 1 subscriber that drops and reconnects")
    churn_every: float = Field(20.0, gt=0)
    churn_offline: float = Field(5.0, gt=0)
    churn_topics: str = "fleet/#"


class Scenario(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    duration: float = Field(gt=0, description="virtual seconds")
    seed: int = 1
    broker: BrokerParams = Field(default_factory=BrokerParams)
    fleet: dict[str, Any] | None = Field(None, description="the reference fleet; runs when given, or when there are no [[services]]")
    services: list[ServiceSet] = Field(default_factory=list)
    pythonpath: list[str] = Field(default_factory=list, description="folders searched for service and check entries (default: the scenario file's folder)")
    network: NetworkParams = Field(default_factory=NetworkParams)
    workload: Workload = Field(default_factory=Workload)
    faults: list[TimedFault] = Field(default_factory=list)
    swarm: SwarmMix | None = None
    swarm_quiet: float = Field(60.0, ge=0, description="seconds at the end of a run with no swarm faults")
    memory_every: float = Field(0.0, ge=0, description="virtual seconds between memory samples in sim (0: none); chaos samples every [chaos] sample_every")
    checks: CheckConfig = Field(default_factory=CheckConfig)
    chaos: ChaosParams = Field(default_factory=ChaosParams)

    @model_validator(mode="after")
    def _faults_inside_run(self) -> "Scenario":
        for i, f in enumerate(self.faults):
            if f.at >= self.duration:
                raise ValueError(f"faults[{i}] starts at {f.at:g}s, after the run ends ({self.duration:g}s)")
        return self

    @model_validator(mode="after")
    def _services_named(self) -> "Scenario":
        check_sets(self.services, RESERVED_HOSTS)
        if not self.runs_fleet:  # only then are all hosts known here (the fleet names its own)
            from sim.services import named_hosts

            known = {"broker", *self.service_hosts(), *(["watcher"] if self.workload.churn_subscriber else [])}
            for where, host in named_hosts(self.faults, self.swarm):
                if host not in known:
                    raise ValueError(f"{where} names host {host!r}, which this scenario does not run; hosts: {', '.join(sorted(known))}")
        return self

    @property
    def runs_fleet(self) -> bool:
        """The reference fleet runs when the scenario asks for it, or when it has nothing else."""
        return self.fleet is not None or not self.services

    @property
    def judges_wire(self) -> bool:
        """Record the broker's wire and judge it: asked for, or a scenario with user services."""
        return self.checks.wire if self.checks.wire is not None else bool(self.services)

    def check_facts(self) -> dict[str, Any]:
        """What the checks need to know about this scenario (``RunFacts.extras``)."""
        return {"fleet": self.runs_fleet, "wire": self.judges_wire, "durable": self.broker.durable and self.broker.flavor == "squall"}

    def service_hosts(self) -> list[str]:
        return [h for s in self.services for h in s.hosts()]

    def schedule(self, seed: int) -> Schedule:
        """The faults of a run with this seed: the explicit ones plus the swarm's draw."""
        faults = list(self.faults)
        if self.swarm is not None:
            faults += swarm_schedule(seed, self.duration, self.swarm, quiet=self.swarm_quiet).faults
        return Schedule(faults=faults)

    def resolved(self, seed: int) -> "Scenario":
        """This scenario with the seed's swarm draw written out as explicit faults (for replay)."""
        return self.model_copy(update={"faults": self.schedule(seed).faults, "swarm": None, "seed": seed})

    def fleet_config(self) -> Any:
        from system.fleet import FleetConfig

        return FleetConfig(**(self.fleet or {}))


def shipped() -> list[str]:
    """Names of the scenarios that ship with squall."""
    folder = resources.files("sim") / "scenarios"
    return sorted(p.name[: -len(".toml")] for p in folder.iterdir() if p.name.endswith(".toml"))


def _explain(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "file"
    got = err.get("input")
    shown = "" if isinstance(got, dict) or got is None else f" (got {got!r})"
    more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    msg = err["msg"].removeprefix("Value error, ")
    return f"{msg}{more}" if where == "file" and err["type"] == "value_error" else f"{where}: {msg}{shown}{more}"


def parse_scenario(text: str, origin: str) -> Scenario:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise BadInput(f"scenario {origin}: not valid TOML: {exc}") from None
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        raise BadInput(f"scenario {origin}: {_explain(exc)}") from None
    if scenario.fleet:
        try:
            scenario.fleet_config()
        except ValidationError as exc:
            raise BadInput(f"scenario {origin}: fleet.{_explain(exc)}") from None
        except ImportError:
            pass
    return scenario


def load_scenario(ref: str | Path) -> Scenario:
    """A shipped scenario by name, or a TOML file by path."""
    path = Path(ref)
    if path.suffix == ".toml" or path.exists():
        if not path.is_file():
            raise BadInput(f"scenario file {ref} not found; shipped scenarios: {', '.join(shipped())}")
        scenario = parse_scenario(path.read_text(), str(path))
        return with_pythonpath(scenario, path.resolve().parent)
    name = str(ref)
    if name not in shipped():
        raise BadInput(f"unknown scenario {name!r}: give a .toml path or one of {', '.join(shipped())}")
    text = (resources.files("sim") / "scenarios" / f"{name}.toml").read_text()
    return parse_scenario(text, f"{name}.toml")


def with_pythonpath(scenario: Scenario, folder: Path) -> Scenario:
    """Its pythonpath made absolute (relative to the scenario's folder, which is the default),
    and its entries checked: an entry that cannot be imported is bad input, said now."""
    if not scenario.services and not scenario.checks.custom:
        return scenario
    paths = [str((folder / p).resolve()) for p in (scenario.pythonpath or ["."])]
    scenario = scenario.model_copy(update={"pythonpath": paths})
    from sim.services import resolve, resolve_service

    for s in scenario.services:
        if s.entry is not None:
            resolve_service(s, paths, "chaos")
    for c in scenario.checks.custom:
        resolve(c.entry, f"checks.custom {c.entry!r}", paths)
    return scenario


def to_toml(scenario: Scenario) -> str:
    """A scenario as a TOML file (what `squall sim shrink` writes)."""
    import tomli_w

    data = scenario.model_dump(mode="json", exclude_none=True)
    data["faults"] = [_flat_fault(f) for f in data.get("faults", [])]
    return tomli_w.dumps(data)


def _flat_fault(f: dict[str, Any]) -> dict[str, Any]:
    fault = dict(f["fault"])
    out = {"at": f["at"]}
    if f.get("duration") is not None:
        out["duration"] = f["duration"]
    if fault.get("kind") == "toxic":
        toxic = fault.pop("toxic")
        fault.update(toxic)
    return {**out, **fault}
