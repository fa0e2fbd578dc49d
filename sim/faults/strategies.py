"""Hypothesis strategies for fault schedules, composed from one strategy per fault kind.

A failing schedule shrinks with hypothesis's own machinery: fewer faults, earlier, shorter,
milder toxics.

    @given(schedule=schedules(duration=60, targets=["broker:1883"], crash_hosts=["broker"]))
    def test_no_loss(schedule): ...
"""

from __future__ import annotations

from typing import Sequence

from hypothesis import strategies as st

from sim.faults.schedule import CrashFault, DownFault, PartitionFault, Schedule, SkewFault, TimedFault, ToxicFault, _without_overlaps
from sim.faults.toxics import Toxic

_ms = st.integers(min_value=0, max_value=3000)


def toxics(types: Sequence[str] = ("latency", "bandwidth", "slicer", "reset_peer", "timeout", "limit_data", "slow_close")) -> st.SearchStrategy[Toxic]:
    attrs = {
        "latency": st.fixed_dictionaries({"latency": _ms, "jitter": st.integers(0, 200)}),
        "bandwidth": st.fixed_dictionaries({"rate": st.integers(1, 1000)}),
        "slicer": st.fixed_dictionaries({"average_size": st.integers(1, 64), "size_variation": st.integers(0, 16), "delay": st.integers(0, 5000)}),
        "reset_peer": st.fixed_dictionaries({"timeout": _ms}),
        "timeout": st.fixed_dictionaries({"timeout": _ms}),
        "limit_data": st.fixed_dictionaries({"bytes": st.integers(0, 4096)}),
        "slow_close": st.fixed_dictionaries({"delay": _ms}),
    }
    return st.sampled_from(list(types)).flatmap(
        lambda kind: st.builds(
            lambda stream, a: Toxic(type=kind, stream=stream, attributes=a),  # type: ignore[arg-type]
            st.sampled_from(["upstream", "downstream"]),
            attrs[kind],
        )
    )


def toxic_faults(targets: Sequence[str]) -> st.SearchStrategy[ToxicFault]:
    return st.builds(ToxicFault, target=st.sampled_from(list(targets)), toxic=toxics())


def partitions(hosts: Sequence[str]) -> st.SearchStrategy[PartitionFault]:
    ordered = sorted(hosts)
    return st.permutations(ordered).flatmap(
        lambda perm: st.builds(
            lambda cut, oneway: PartitionFault(a=sorted(perm[:cut]), b=sorted(perm[cut:]), oneway=oneway),
            st.integers(1, len(perm) - 1),
            st.booleans(),
        )
    )


def crashes(hosts: Sequence[str]) -> st.SearchStrategy[CrashFault]:
    return st.builds(CrashFault, host=st.sampled_from(list(hosts)))


def skews(hosts: Sequence[str]) -> st.SearchStrategy[SkewFault]:
    return st.builds(SkewFault, host=st.sampled_from(list(hosts)), offset=st.floats(-600, 600, allow_nan=False), drift=st.just(0.0))


def downs(targets: Sequence[str]) -> st.SearchStrategy[DownFault]:
    return st.builds(DownFault, target=st.sampled_from(list(targets)))


def schedules(
    duration: float,
    *,
    targets: Sequence[str] = (),
    partition_hosts: Sequence[str] = (),
    crash_hosts: Sequence[str] = (),
    skew_hosts: Sequence[str] = (),
    max_faults: int = 6,
    max_fault_seconds: float = 20.0,
) -> st.SearchStrategy[Schedule]:
    """Schedules of up to max_faults faults inside [0, duration], drawn from the kinds given hosts for."""
    kinds = []
    if targets:
        kinds += [toxic_faults(targets), downs(targets)]
    if len(partition_hosts) >= 2:
        kinds.append(partitions(partition_hosts))
    if crash_hosts:
        kinds.append(crashes(crash_hosts))
    if skew_hosts:
        kinds.append(skews(skew_hosts))
    if not kinds:
        return st.just(Schedule())
    timed = st.builds(
        TimedFault,
        at=st.floats(0, duration, allow_nan=False).map(lambda x: round(x, 3)),
        duration=st.floats(0.1, max_fault_seconds, allow_nan=False).map(lambda x: round(x, 3)),
        fault=st.one_of(*kinds),
    )
    return st.lists(timed, max_size=max_faults).map(lambda fs: Schedule(faults=_without_overlaps(_unique_toxic_names(fs))))


def _unique_toxic_names(faults: list[TimedFault]) -> list[TimedFault]:
    out = []
    for i, f in enumerate(faults):
        if isinstance(f.fault, ToxicFault):
            toxic = f.fault.toxic.model_copy(update={"name": f"{f.fault.toxic.type}_{f.fault.toxic.stream}_{i}"})
            f = f.model_copy(update={"fault": f.fault.model_copy(update={"toxic": toxic})})
        out.append(f)
    return out
