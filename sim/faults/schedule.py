"""Fault schedules: which fault, when, for how long; and swarm schedules drawn from a seed.

A schedule is pure data (pydantic), so it validates from a scenario file, prints, diffs
and shrinks. `Schedule.apply(world)` is the only place it touches a world.

Faults, by kind:

- ``toxic``: a Toxiproxy toxic on a target (``"host:port"`` or ``"a<->b"``); removed after duration.
- ``down``: the target disabled (Toxiproxy's enabled=false); re-enabled after duration.
- ``partition``: host sets a and b cut apart (``oneway``: only a->b); healed after duration.
- ``crash``: a host crashes; restarted after duration (never, without one). ``mode = "hard"``
  (the default) is a SIGKILL: none of its code runs again, not even ``finally:``;
  ``"graceful"`` cancels its tasks, so their cleanup runs (an orderly stop).
- ``skew``: a host's wall clock offset (and drift); back to true after duration.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Annotated, Any, Iterable, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, model_validator

from sim.faults.toxics import TOXIC_TYPES, Toxic

if TYPE_CHECKING:
    from sim._world import World

FAULT_KINDS = ("toxic", "down", "partition", "crash", "skew")
MAX_SECONDS = 1_000_000.0  # a bound on every time in a schedule: about 11.6 days (the shipped soak is 1 day)


class _Fault(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ToxicFault(_Fault):
    kind: Literal["toxic"] = "toxic"
    target: str
    toxic: Toxic

    def start(self, world: "World") -> None:
        world.add_toxic(self.target, self.toxic)

    def stop(self, world: "World") -> None:
        world.remove_toxic(self.target, self.toxic.name)

    def label(self) -> str:
        return f"{self.toxic.type} on {self.target}"


class DownFault(_Fault):
    kind: Literal["down"] = "down"
    target: str

    def start(self, world: "World") -> None:
        world.disable(self.target)

    def stop(self, world: "World") -> None:
        world.enable(self.target)

    def label(self) -> str:
        return f"{self.target} down"


class PartitionFault(_Fault):
    kind: Literal["partition"] = "partition"
    a: list[str] = Field(min_length=1)
    b: list[str] = Field(min_length=1)
    oneway: bool = False

    def start(self, world: "World") -> None:
        world.partition(self.a, self.b, oneway=self.oneway)

    def stop(self, world: "World") -> None:
        world.heal(self.a, self.b)

    def label(self) -> str:
        return f"partition {','.join(self.a)}{'->' if self.oneway else '<->'}{','.join(self.b)}"


class CrashFault(_Fault):
    kind: Literal["crash"] = "crash"
    host: str
    mode: Literal["hard", "graceful"] = "hard"

    def start(self, world: "World") -> None:
        world.crash(self.host, hard=self.mode == "hard")

    def stop(self, world: "World") -> None:
        world.restart(self.host)

    def label(self) -> str:
        return f"crash {self.host}" if self.mode == "hard" else f"stop {self.host}"


class SkewFault(_Fault):
    kind: Literal["skew"] = "skew"
    host: str
    offset: float = Field(ge=-1e7, le=1e7, description="seconds, at most about 115 days either way")
    drift: float = Field(0.0, ge=-0.5, le=0.5, description="seconds gained per second, -0.5 to 0.5")

    def start(self, world: "World") -> None:
        world.skew(self.host, self.offset, self.drift)

    def stop(self, world: "World") -> None:
        world.skew(self.host, 0.0, 0.0)

    def label(self) -> str:
        return f"skew {self.host} {self.offset:+g}s"


Fault = Annotated[Union[ToxicFault, DownFault, PartitionFault, CrashFault, SkewFault], Field(discriminator="kind")]


class TimedFault(BaseModel):
    """A fault at virtual time ``at``, undone after ``duration`` seconds (None: never)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    at: float = Field(ge=0, le=MAX_SECONDS, description="virtual seconds")
    duration: float | None = Field(default=None, gt=0, le=MAX_SECONDS, description="seconds, None: never undone")
    fault: Fault

    @model_validator(mode="before")
    @classmethod
    def _flat(cls, data: Any) -> Any:
        # Scenario files write faults flat: at, duration, kind and the fault's own fields.
        # Without a kind it is still a flat fault: the error then names the missing kind.
        if isinstance(data, dict) and "fault" not in data:
            data = dict(data)
            timing = {k: data.pop(k) for k in ("at", "duration") if k in data}
            if data.get("kind") == "toxic" and "toxic" not in data:
                toxic = {k: data.pop(k) for k in ("name", "type", "stream", "toxicity", "attributes") if k in data}
                data["toxic"] = toxic
            return {**timing, "fault": data}
        return data

    @property
    def end(self) -> float | None:
        return None if self.duration is None else self.at + self.duration


class Schedule(BaseModel):
    """Faults to apply to a run, in any order; applied in (time, listed order)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    faults: list[TimedFault] = Field(default_factory=list)

    def apply(self, world: "World") -> None:
        for timed in sorted(self.faults, key=lambda f: f.at):
            world.at(timed.at, timed.fault.start, world)
            if timed.duration is not None:
                world.at(timed.at + timed.duration, timed.fault.stop, world)

    def windows(self) -> list[tuple[float, float | None, str, str]]:
        """(start, end, kind, label) of every fault, for reports and plots."""
        return [(f.at, f.end, f.fault.kind, f.fault.label()) for f in sorted(self.faults, key=lambda f: f.at)]

    @property
    def quiet_after(self) -> float:
        """When the last fault is undone (faults without a duration count from their start)."""
        return max((f.end if f.end is not None else f.at for f in self.faults), default=0.0)

    def __len__(self) -> int:
        return len(self.faults)


class SwarmMix(BaseModel):
    """How a swarm draws faults: which kinds, how often, how long, on what.

    Swarm testing: for each seed, each fault kind is switched on only with probability
    ``p_kind`` (at least one stays on), so some seeds see only partitions, others only crashes
    and latency, and interactions a uniform mix would dilute get hammered.
    """

    model_config = ConfigDict(extra="forbid")

    kinds: list[Literal["toxic", "down", "partition", "crash", "skew"]] = Field(default_factory=lambda: ["toxic", "partition", "crash"])
    p_kind: float = Field(0.5, ge=0, le=1)
    per_minute: float = Field(2.0, ge=0, le=600, description="faults per virtual minute (intensity), at most 600")
    min_duration: float = Field(1.0, ge=0.001, le=MAX_SECONDS, description="seconds, at least 0.001")
    max_duration: float = Field(15.0, ge=0.001, le=MAX_SECONDS, description="seconds, at least min_duration")
    toxic_types: list[Literal["latency", "bandwidth", "slow_close", "timeout", "reset_peer", "slicer", "limit_data", "noop"]] = Field(
        default_factory=lambda: ["latency", "bandwidth", "slicer", "reset_peer", "timeout", "limit_data"], min_length=1, description=f"toxics to draw from: some of {', '.join(TOXIC_TYPES)}"
    )
    crash_hosts: list[str] = Field(default_factory=list)
    crash_mode: Literal["hard", "graceful"] = Field("hard", description="hard: SIGKILL, no cleanup runs; graceful: tasks cancelled")
    partition_hosts: list[str] = Field(default_factory=list)
    targets: list[str] = Field(default_factory=list)
    skew_hosts: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _durations_ordered(self) -> "SwarmMix":
        if self.min_duration > self.max_duration:
            raise ValueError(f"min_duration ({self.min_duration:g}) is above max_duration ({self.max_duration:g}); swap them")
        return self

    def usable_kinds(self) -> list[str]:
        need = {"toxic": self.targets, "down": self.targets, "partition": self.partition_hosts, "crash": self.crash_hosts, "skew": self.skew_hosts}
        return [k for k in self.kinds if need[k] and (k != "partition" or len(self.partition_hosts) >= 2)]


def _toxic(rng: random.Random, types: list[str], index: int) -> Toxic:
    kind = rng.choice(types)
    attributes: dict[str, Any] = {
        "latency": lambda: {"latency": rng.randint(10, 2000), "jitter": rng.randint(0, 200)},
        "bandwidth": lambda: {"rate": rng.randint(1, 100)},
        "slicer": lambda: {"average_size": rng.randint(1, 64), "size_variation": rng.randint(0, 16), "delay": rng.randint(0, 5000)},
        "reset_peer": lambda: {"timeout": rng.randint(0, 3000)},
        "timeout": lambda: {"timeout": rng.randint(0, 5000)},
        "limit_data": lambda: {"bytes": rng.randint(0, 4096)},
        "slow_close": lambda: {"delay": rng.randint(0, 3000)},
        "noop": lambda: {},
    }[kind]()
    stream = rng.choice(["upstream", "downstream"])
    return Toxic(name=f"{kind}_{stream}_{index}", type=kind, stream=stream, attributes=attributes)  # type: ignore[arg-type]


def swarm_schedule(seed: int, duration: float, mix: SwarmMix, *, start: float = 5.0, quiet: float = 0.0) -> Schedule:
    """A random schedule drawn from seed: faults between start and duration - quiet."""
    rng = random.Random(f"swarm:{seed}")
    usable = mix.usable_kinds()
    enabled = [k for k in usable if rng.random() < mix.p_kind] or ([rng.choice(usable)] if usable else [])
    end = max(start, duration - quiet)
    # A run over before the swarm starts gets no faults (they would start after its end, and a
    # replay of the run's scenario.toml would refuse them).
    count = 0 if not enabled or duration <= start else max(1, round(mix.per_minute * (end - start) / 60.0 * (0.5 + rng.random())))
    faults: list[TimedFault] = []
    for i in range(count):
        kind = rng.choice(enabled)
        at = round(rng.uniform(start, end), 3)
        length = round(min(rng.uniform(mix.min_duration, mix.max_duration), max(end - at, mix.min_duration)), 3)
        fault: Any
        if kind == "toxic":
            fault = ToxicFault(target=rng.choice(mix.targets), toxic=_toxic(rng, mix.toxic_types, i))
        elif kind == "down":
            fault = DownFault(target=rng.choice(mix.targets))
        elif kind == "partition":
            hosts = sorted(mix.partition_hosts)
            rng.shuffle(hosts)
            cut = rng.randint(1, len(hosts) - 1)
            fault = PartitionFault(a=sorted(hosts[:cut]), b=sorted(hosts[cut:]), oneway=rng.random() < 0.25)
        elif kind == "crash":
            fault = CrashFault(host=rng.choice(mix.crash_hosts), mode=mix.crash_mode)
        else:
            fault = SkewFault(host=rng.choice(mix.skew_hosts), offset=round(rng.uniform(-300, 300), 3), drift=round(rng.uniform(-0.001, 0.001), 6))
        faults.append(TimedFault(at=at, duration=length, fault=fault))
    return Schedule(faults=_without_overlaps(faults))


def _without_overlaps(faults: Iterable[TimedFault]) -> list[TimedFault]:
    """Drop faults that would fight over one thing (same host crashed twice, same toxic name)."""
    kept: list[TimedFault] = []
    busy: dict[str, float] = {}
    for f in sorted(faults, key=lambda f: f.at):
        key = _resource(f.fault)
        if busy.get(key, -1.0) > f.at:
            continue
        busy[key] = f.end if f.end is not None else float("inf")
        kept.append(f)
    return kept


def _resource(fault: Any) -> str:
    if isinstance(fault, ToxicFault):
        return f"toxic:{fault.target}:{fault.toxic.name}"
    if isinstance(fault, (DownFault,)):
        return f"down:{fault.target}"
    if isinstance(fault, PartitionFault):
        return "partition"
    if isinstance(fault, CrashFault):
        return f"host:{fault.host}"
    return f"skew:{fault.host}"
