"""Overflow policies and the control band, on the pure FlowQueue (no broker, no clock)."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from system import OverflowPolicy
from system.bus import FlowQueue
from system.bus._flow import AsyncFlowQueue

topics = st.sampled_from(["t/a", "t/b", "t/c"])
# A run is a list of steps: ("offer", topic) or ("pop", None).
steps = st.lists(st.one_of(topics.map(lambda t: ("offer", t)), st.just(("pop", None))), max_size=200)
capacities = st.integers(min_value=1, max_value=8)


def run(queue: FlowQueue[int], script: list[tuple[str, str | None]]):
    """Offer increasing ints; returns (popped, waited, evicted, offered)."""
    popped, waited, evicted, offered = [], [], [], []
    n = 0
    for op, topic in script:
        if op == "pop":
            item = queue.pop()
            if item is not None:
                popped.append(item)
        else:
            n += 1
            offered.append((topic, n))
            result = queue.offer(topic, n)
            evicted += result.evicted
            if result.wait:
                waited.append((topic, n))
    popped += list(iter(queue.pop, None))
    return popped, waited, evicted, offered


@given(steps, capacities)
def test_block_loses_nothing_and_keeps_order(script, capacity) -> None:
    q: FlowQueue[int] = FlowQueue(capacity, policies=[("#", OverflowPolicy.block())])
    popped, waited, evicted, offered = run(q, script)
    assert not evicted
    assert sorted(popped + waited) == sorted(offered)  # every item either queued or told to wait
    assert [v for _, v in popped] == sorted(v for _, v in popped)  # FIFO
    assert len(q) == 0


@given(steps, capacities)
def test_drop_discards_only_the_new_item_when_full(script, capacity) -> None:
    q: FlowQueue[int] = FlowQueue(capacity, policies=[("#", OverflowPolicy.drop())])
    popped, waited, evicted, offered = run(q, script)
    assert not waited
    assert {e.reason for e in evicted} <= {"overflow"}
    assert sorted(popped + [(e.topic, e.value) for e in evicted]) == sorted(offered)
    assert [v for _, v in popped] == sorted(v for _, v in popped)


@given(steps, capacities)
def test_latest_always_admits_the_newest_and_never_exceeds_capacity(script, capacity) -> None:
    q: FlowQueue[int] = FlowQueue(capacity, policies=[("t/#", OverflowPolicy.latest())])
    n = 0
    for op, topic in script:
        if op == "pop":
            q.pop()
            continue
        n += 1
        before = len(q)
        result = q.offer(topic, n)
        assert result.accepted and not result.wait
        assert len(q) <= capacity
        if before == capacity:
            [victim] = result.evicted
            assert victim.reason == "superseded"
            # the same topic's older value goes first when there is one
            assert victim.topic == topic or all(t != topic for t, _ in _pending(q) if _ != n)
    # what is left is the newest items, in order
    left = [v for _, v in iter(q.pop, None)]
    assert left == sorted(left)


def _pending(q: FlowQueue[int]):
    return [(e.topic, e.value) for band in q._bands for e in band]  # noqa: SLF001 - white-box check


@given(steps, capacities)
def test_coalesce_conserves_the_merged_quantity(script, capacity) -> None:
    q: FlowQueue[int] = FlowQueue(capacity, policies=[("#", OverflowPolicy.coalesce(lambda old, new: old + new))])
    popped, waited, evicted, offered = run(q, script)
    assert {e.reason for e in evicted} <= {"coalesced"}
    # a sum-merge loses nothing: what came out plus what was told to wait is what went in, per topic
    out, waited_sum, sent = Counter(), Counter(), Counter()
    for t, v in popped:
        out[t] += v
    for t, v in waited:
        waited_sum[t] += v
    for t, v in offered:
        sent[t] += v
    assert out + waited_sum == sent


@given(st.lists(st.tuples(st.booleans(), topics), max_size=100), capacities)
def test_control_band_always_pops_before_data(offers, capacity) -> None:
    q: FlowQueue[int] = FlowQueue(capacity, control_capacity=capacity, policies=[("#", OverflowPolicy.drop())])
    accepted_control = 0
    for i, (control, topic) in enumerate(offers):
        if q.offer(topic, i, control=control).accepted and control:
            accepted_control += 1
    kinds = []
    while (item := q.pop()) is not None:
        kinds.append(item[1])
    control_ids = {i for i, (c, _) in enumerate(offers) if c}
    flags = [v in control_ids for v in kinds]
    assert flags == sorted(flags, reverse=True)  # all control items, then all data items
    assert sum(flags) == accepted_control


def test_first_matching_pattern_wins_and_control_patterns_pick_the_band() -> None:
    q: FlowQueue[str] = FlowQueue(
        1,
        policies=[("cmd/#", OverflowPolicy.block()), ("sensors/+/temp", OverflowPolicy.latest())],
        default=OverflowPolicy.drop(),
        control=["cmd/#"],
    )
    assert q.offer("sensors/1/temp", "a").accepted
    assert q.offer("sensors/1/temp", "b").evicted[0].value == "a"
    assert q.offer("other", "c").evicted[0].reason == "overflow"
    assert q.offer("cmd/stop", "x").accepted
    assert q.offer("cmd/stop", "y").wait
    assert [q.pop(), q.pop(), q.pop()] == [("cmd/stop", "x"), ("sensors/1/temp", "b"), None]


def test_policy_misuse_is_explained() -> None:
    with pytest.raises(ValueError, match="merge function goes with 'coalesce'"):
        OverflowPolicy("drop", merge=lambda a, b: a)
    with pytest.raises(ValueError, match="unknown overflow policy"):
        OverflowPolicy("fifo")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="'#' must be a whole level"):
        FlowQueue(1, policies=[("a/#/b", OverflowPolicy.drop())])


def test_async_put_blocks_until_a_get_makes_room() -> None:
    async def main() -> list[int]:
        q: AsyncFlowQueue[int] = AsyncFlowQueue(FlowQueue(2), on_evict=lambda ev: None)
        producer = asyncio.create_task(_produce(q, 10))
        got = [(await q.get())[1] for _ in range(10)]
        await asyncio.wait_for(producer, 10)
        return got

    async def _produce(q: AsyncFlowQueue[int], n: int) -> None:
        for i in range(n):
            await q.put("t", i)
            assert len(q) <= 2

    assert asyncio.run(main()) == list(range(10))
