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
from typing import Any, Iterable, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from sim._scenario_errors import explain, filter_problem, non_finite
from sim.checks import CHECKS, WIRE_CHECKS, CheckConfig
from sim.errors import BadInput, shown
from sim.faults.schedule import MAX_SECONDS, Schedule, SwarmMix, TimedFault, swarm_schedule
from sim.services import ServiceSet, check_sets

# Bounds no real run comes near: they are there so a typo (1e308, 1e-9) is an error, not a hang.
MAX_FILE_BYTES = 1_000_000  # a scenario file; the shipped ones are about 1 kB
MAX_READINGS = 10_000_000  # sensor readings one sim run may publish (rooms x sensors x duration / interval)
MAX_SWARM_FAULTS = 10_000  # faults one swarm may draw (per_minute x minutes)

# Hosts squall itself runs; user services may not take these names.
RESERVED_HOSTS = {"broker", "monitor", "watcher", "main"}


class NetworkParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    latency_ms: float = Field(0.5, ge=0, le=60_000, description="one-way delay of every link, ms (at most a minute)")
    jitter_ms: float = Field(0.2, ge=0, le=60_000, description="ms, at most a minute")
    tick_ms: float = Field(0.5, ge=0, le=1000, description="arrival grid; 0 = exact times (at most 1000 ms)")
    user_timeout_s: float = Field(30.0, ge=0.1, le=3600, description="TCP user timeout, 0.1 s to an hour")


class BrokerParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    flavor: Literal["squall", "amqtt"] = "squall"
    durable: bool = Field(True, description="sessions and retained messages survive a broker crash, as with durable storage (squall flavor)")


class ChaosParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    duration: float = Field(20.0, gt=0, le=86_400, description="wall seconds of a chaos run, at most a day (faults are scaled to fit)")
    sample_every: float = Field(1.0, ge=0.01, le=3600, description="seconds between memory samples, 0.01 to 3600")


class Workload(BaseModel):
    """Extra load beside the fleet (a churning subscriber, a silent device)."""

    model_config = ConfigDict(extra="forbid")

    churn_subscriber: bool = Field(False, description="a QoS 1 subscriber that drops and reconnects")
    churn_every: float = Field(20.0, ge=0.1, le=MAX_SECONDS, description="seconds between the churner's drops, at least 0.1")
    churn_offline: float = Field(5.0, ge=0.01, le=MAX_SECONDS, description="seconds the churner stays away, at least 0.01")
    churn_topics: str = "fleet/#"
    supervised: int = Field(0, ge=0, le=20, description="flaky services run by a system.Supervisor on host 'supervisor'")
    supervised_lifetime: float = Field(20.0, gt=0, le=86400, description="mean seconds a flaky service lives before it dies")
    supervised_stable_after: float = Field(60.0, gt=0, le=86400)


class Scenario(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    duration: float = Field(gt=0, le=MAX_SECONDS, description="virtual seconds, at most 1,000,000 (the shipped soak is 86,400)")
    seed: int = 1
    broker: BrokerParams = Field(default_factory=BrokerParams)
    fleet: dict[str, Any] | None = Field(None, description="the reference fleet; runs when given, or when there are no [[services]]")
    services: list[ServiceSet] = Field(default_factory=list, max_length=1000)
    pythonpath: list[str] = Field(default_factory=list, description="folders searched for service and check entries (default: the scenario file's folder)")
    network: NetworkParams = Field(default_factory=NetworkParams)
    workload: Workload = Field(default_factory=Workload)
    faults: list[TimedFault] = Field(default_factory=list, max_length=10_000)
    swarm: SwarmMix | None = None
    swarm_quiet: float = Field(60.0, ge=0, le=MAX_SECONDS, description="seconds at the end of a run with no swarm faults")
    memory_every: float = Field(0.0, ge=0, le=MAX_SECONDS, description="virtual seconds between memory samples in sim (0: none, else at least 1); chaos samples every [chaos] sample_every")
    checks: CheckConfig = Field(default_factory=CheckConfig)
    chaos: ChaosParams = Field(default_factory=ChaosParams)

    @model_validator(mode="after")
    def _consistent(self) -> "Scenario":
        for i, f in enumerate(self.faults):
            if f.at >= self.duration:
                raise ValueError(f"faults[{i}] starts at {f.at:g}s, after the run ends ({self.duration:g}s)")
        known_checks = [*CHECKS, *WIRE_CHECKS]
        unknown = [name for name in self.checks.skip if name not in known_checks]
        if unknown:
            raise ValueError(f"checks.skip: unknown check {shown(repr(unknown[0]), 40)}; choose from {', '.join(known_checks)}")
        bad_filter = filter_problem(self.checks.topics)
        if bad_filter:
            raise ValueError(f"checks.topics: {shown(repr(self.checks.topics), 60)} is not an MQTT topic filter ({bad_filter}); e.g. topics = \"fleet/+/+/telemetry/#\"")
        if self.swarm is not None and self.swarm.kinds and not self.swarm.usable_kinds():
            raise ValueError(
                "swarm: none of its kinds can be drawn, so it would add no fault: toxic and down need targets, "
                "partition two partition_hosts, crash crash_hosts, skew skew_hosts"
            )
        if 0 < self.memory_every < 1:
            raise ValueError(f"memory_every: sample at most once a virtual second (got {self.memory_every:g}); set memory_every = 1 or more, or 0 for none")
        return self

    def check_size(self) -> None:
        """Refuse a run too big to ever finish (the fleet's readings, the swarm's faults)."""
        if self.runs_fleet:
            from system.fleet import FleetConfig

            fleet = FleetConfig(**(self.fleet or {}))
            readings = fleet.rooms * fleet.sensors_per_room * self.duration / fleet.telemetry_interval
        else:
            readings = 0.0
        if readings > MAX_READINGS:
            raise BadInput(
                f"fleet: this run would publish about {readings:,.0f} sensor readings (rooms x sensors_per_room x duration / telemetry_interval), "
                f"at most {MAX_READINGS:,}; lower duration, rooms or sensors_per_room, or raise telemetry_interval"
            )
        if self.swarm is not None and self.swarm.per_minute * self.duration / 60 > MAX_SWARM_FAULTS:
            raise BadInput(f"swarm.per_minute: {self.swarm.per_minute:g} faults a minute for {self.duration:g} s is more than {MAX_SWARM_FAULTS:,} faults; lower per_minute or duration")

    def check_hosts(self) -> None:
        """Every host a fault names is one this run has: a typo would make the fault do nothing."""
        from sim._links import parse_target
        from sim._plan import host_names

        known = host_names(self)
        problems: list[str] = []

        def check(where: str, hosts: Iterable[str]) -> None:
            problems.extend(f"{where}: no host {shown(repr(h), 40)} in this run" for h in hosts if h not in known)

        def target(where: str, text: str) -> None:
            try:
                parts = parse_target(text)
            except BadInput as exc:
                problems.append(f"{where}: {exc}")
                return
            check(where, parts[1:3] if parts[0] == "link" else parts[1:2])

        for i, timed in enumerate(self.faults):
            f = timed.fault
            if f.kind in ("toxic", "down"):
                target(f"faults[{i}].target", f.target)  # type: ignore[union-attr]
            elif f.kind == "partition":
                check(f"faults[{i}].a", f.a)  # type: ignore[union-attr]
                check(f"faults[{i}].b", f.b)  # type: ignore[union-attr]
            else:
                check(f"faults[{i}].host", [f.host])  # type: ignore[union-attr]
        if self.runs_fleet:  # the fleet's receivers; user services are judged on the wire
            check("checks.receivers", self.checks.receivers)
        if self.swarm is not None:
            for field in ("crash_hosts", "partition_hosts", "skew_hosts"):
                check(f"swarm.{field}", getattr(self.swarm, field))
            for j, text in enumerate(self.swarm.targets):
                target(f"swarm.targets[{j}]", text)
        if problems:
            raise BadInput(f"{'; '.join(problems)}; this run's hosts: {shown(', '.join(sorted(known)), 200)}")

    def with_duration(self, duration: float) -> "Scenario":
        """This scenario run for another duration (`--duration`), still within the bounds."""
        if not 0 < duration <= MAX_SECONDS:
            raise BadInput(f"--duration {duration:g}: give 0 < seconds <= {MAX_SECONDS:,}")
        scenario = self.model_copy(update={"duration": duration})
        scenario.check_size()
        return scenario

    @model_validator(mode="after")
    def _services_named(self) -> "Scenario":
        check_sets(self.services, RESERVED_HOSTS)
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


def parse_scenario(text: str, origin: str) -> Scenario:
    origin = shown(origin, 120)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise BadInput(f"scenario {origin}: not valid TOML: {exc}") from None
    except RecursionError:
        raise BadInput(f"scenario {origin}: nested too deeply to read; a scenario's tables and arrays nest two or three levels") from None
    bad = non_finite(data)
    if bad:
        raise BadInput(f"scenario {origin}: {'; '.join(bad)}")
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        raise BadInput(f"scenario {origin}: {explain(exc)}") from None
    except RecursionError:
        raise BadInput(f"scenario {origin}: nested too deeply; a scenario's tables and arrays nest two or three levels") from None
    try:
        scenario.fleet_config()
        scenario.check_size()
        scenario.check_hosts()
    except ValidationError as exc:
        raise BadInput(f"scenario {origin}: {explain(exc, 'fleet.')}") from None
    except BadInput as exc:
        raise BadInput(f"scenario {origin}: {exc}") from None
    except ImportError:
        pass
    return scenario


def _read(path: Path) -> str:
    where = f"scenario file {shown(str(path), 120)}"
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise BadInput(f"{where}: {size:,} bytes is not a scenario (at most {MAX_FILE_BYTES:,}); give the right file")
        data = path.read_bytes()
    except OSError as exc:
        raise BadInput(f"{where}: cannot read it ({exc.strerror or exc}); give a readable .toml file") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadInput(f"{where}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); TOML is UTF-8: save the file as UTF-8") from None


def load_scenario(ref: str | Path) -> Scenario:
    """A shipped scenario by name, or a TOML file by path."""
    path = Path(ref)
    try:
        exists = path.exists()
    except OSError:  # a name too long for the file system
        exists = False
    if exists and path.suffix != ".toml" and str(ref) in shipped() and path.is_dir():
        exists = False  # a folder named like a shipped scenario (a sweep's --out, say) is not a scenario file
    if path.suffix == ".toml" or exists:
        if exists and path.is_dir():
            raise BadInput(f"scenario {shown(str(ref), 120)} is a directory; give a .toml file or one of {', '.join(shipped())}")
        if not exists:
            raise BadInput(f"scenario file {shown(str(ref), 120)} not found; shipped scenarios: {', '.join(shipped())}")
        if not path.is_file():
            raise BadInput(f"scenario {shown(str(ref), 120)} is not a regular file; give a .toml file or one of {', '.join(shipped())}")
        scenario = parse_scenario(_read(path), str(path))
        return with_pythonpath(scenario, path.resolve().parent)
    name = str(ref)
    if name not in shipped():
        raise BadInput(f"unknown scenario {shown(repr(name), 80)}: give a .toml path or one of {', '.join(shipped())}")
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
        if s.entry is not None:  # the entry itself; a chaos command's program is checked when chaos plans the run
            resolve_service(s, paths, "sim")
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
