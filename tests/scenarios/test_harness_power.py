"""The harness catches each class of bug it used to miss (issue 14).

Each test plants one realistic bug in the system through a test-only monkeypatch (never in
production code), sweeps seeds 1-20 until the check that owns that promise fails, shows the
report names the first message/request/client that broke it, and shrinks the failing run's
faults to at most 3. The same scenario and seeds pass on the unmodified code.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sim.faults.schedule import CrashFault, DownFault, PartitionFault, TimedFault, ToxicFault
from sim.faults.toxics import Toxic
from sim.report import culprit
from sim.runner import RunOutcome, run_scenario
from sim.scenario import Scenario, load_scenario
from sim.shrink import shrink_run

pytestmark = pytest.mark.slow  # each sweeps and shrinks a few simulated runs (tens of seconds)

SEEDS = range(1, 21)


def failing(scenario: Scenario, check: str, seeds: range = SEEDS) -> Iterator[tuple[int, RunOutcome]]:
    """Runs seeds in order; yields each run, the last one the first that fails ``check``."""
    for seed in seeds:
        outcome = run_scenario(scenario, seed, keep_trace=False, plots=False)
        yield seed, outcome
        if not next(c for c in outcome.report["checks"] if c["name"] == check)["ok"]:
            return


def hunt(scenario: Scenario, check: str, tmp_path, *, max_runs: int = 8) -> tuple[int, dict]:
    """The planted bug fails ``check`` within 20 seeds; the report names the culprit; the
    shrinker keeps it failing with at most 3 faults. Returns (seed, the failed check)."""
    runs = list(failing(scenario, check))
    seed, outcome = runs[-1]
    result = next(c for c in outcome.report["checks"] if c["name"] == check)
    assert not result["ok"], f"{check} never failed in seeds 1-20 with the bug planted"
    assert result.get("at") is not None and culprit(result) != "-", result
    out = tmp_path / "run"
    run_scenario(scenario, seed, out=out, plots=False)
    shrunk = shrink_run(out, max_runs=max_runs)
    assert check in shrunk.failing and len(shrunk.minimal.faults) <= min(3, len(shrunk.original.faults) - 1), shrunk.minimal
    return seed, result


def passes(scenario: Scenario, seeds: range) -> None:
    for seed in seeds:
        outcome = run_scenario(scenario, seed, keep_trace=False, plots=False)
        failed = {c["name"]: c["detail"] for c in outcome.report["checks"] if not c["ok"]}
        assert not failed, f"unmodified code failed seed {seed}: {failed}"


# -- the scenarios the bugs are hunted in -----------------------------------------------------

# Faults beside the ones that matter, for the shrinker to take away.
NOISE = [
    TimedFault(at=20, duration=10, fault=ToxicFault(target="controller<->broker", toxic=Toxic(name="lat", type="latency", attributes={"latency": 30}))),
    TimedFault(at=100, duration=10, fault=ToxicFault(target="recorder<->broker", toxic=Toxic(name="slice", type="slicer", attributes={"average_size": 16, "delay": 100}))),
]


def overflowing(policy: str = "latest", duration: float = 200.0) -> Scenario:
    """queue-overflow, shortened: sensors cut off past their queue, a slow uplink, the broker down."""
    s = load_scenario("queue-overflow")
    return s.model_copy(update={"duration": duration, "fleet": {**s.fleet, "telemetry_policy": policy}, "faults": [*s.faults, *NOISE]})


def forgetful_broker() -> Scenario:
    """broker-restart with a broker that loses every session when it crashes: a request or a
    reply on its way is lost with it."""
    s = load_scenario("broker-restart")
    return s.model_copy(update={
        "broker": s.broker.model_copy(update={"durable": False}),
        "duration": 200.0,
        "faults": [*s.faults, *NOISE],
        # A forgetful broker loses what it held at the crash; that is not what is judged here.
        "checks": s.checks.model_copy(update={"max_qos1_lost": 10_000, "skip": ["accounting", "liveness"]}),
    })


def redelivering() -> Scenario:
    """The recorder's way to the broker cut (one way) for longer than the broker's keep-alive
    while QoS 1 flows: its PUBACKs are lost, the broker drops it, and on its return sends
    again what the recorder already has."""
    s = load_scenario("partition-heal")
    cuts = [TimedFault(at=at, duration=20, fault=PartitionFault(a=["recorder"], b=["broker"], oneway=True)) for at in (30, 80, 130)]
    return s.model_copy(update={"duration": 200.0, "faults": [*cuts, *NOISE]})


def blind_watcher() -> Scenario:
    """The broker unreachable for everyone, the monitor included, while a sensor crashes."""
    s = load_scenario("smoke")
    faults = [
        TimedFault(at=40, duration=45, fault=DownFault(target="broker:1883")),
        TimedFault(at=50, duration=100, fault=CrashFault(host="sensor-r1-1")),
        TimedFault(at=120, duration=50, fault=CrashFault(host="sensor-r1-2")),
        *NOISE,
    ]
    # smoke's latency budget is for a run without faults; this one holds the broker down for 45 s.
    return s.model_copy(update={"duration": 240.0, "faults": faults, "checks": s.checks.model_copy(update={"convergence_s": 60, "latency_p99_ms": None})})


# -- the planted bugs (test-only monkeypatches) ---------------------------------------------


@pytest.fixture
def silent_eviction(monkeypatch):
    """1. A queue that evicts under 'latest' without telling anyone: no drop on record."""
    from system.bus import _flow

    original = _flow.FlowQueue.offer

    def offer(self, topic, value, *, control=None):
        result = original(self, topic, value, control=control)
        return _flow.Offer(result.accepted, result.wait, tuple(e for e in result.evicted if e.reason != "superseded"))

    monkeypatch.setattr(_flow.FlowQueue, "offer", offer)


@pytest.fixture
def latest_keeps_oldest(monkeypatch):
    """2. 'latest' that, once full, keeps the queue and throws the new message away, while
    reporting it as superseded by the oldest one."""
    from system.bus import _flow

    original = _flow.FlowQueue.offer

    def offer(self, topic, value, *, control=None):
        band = self._bands[0 if (self.is_control(topic) if control is None else control) else 1]
        full = len(band) >= (self.control_capacity if band is self._bands[0] else self.capacity)
        if full and self.policy_for(topic)[1].mode == "latest" and band:
            oldest = next((e for e in band if e.topic == topic), band[0])
            return _flow.Offer(True, evicted=(_flow.Evicted(topic, value, "superseded", "data", "latest", oldest.value),))
        return original(self, topic, value, control=control)

    monkeypatch.setattr(_flow.FlowQueue, "offer", offer)


@pytest.fixture
def data_before_control(monkeypatch):
    """3. A queue that serves the data band first: health waits behind the whole backlog."""
    from system.bus import _flow

    def pop(self):
        for band in reversed(self._bands):
            if band:
                entry = band.popleft()
                return entry.topic, entry.value
        return None

    monkeypatch.setattr(_flow.FlowQueue, "pop", pop)


@pytest.fixture
def no_request_timeout(monkeypatch):
    """4. request() that forgets its timeout: a lost reply leaves the caller waiting forever."""
    from system.bus import _client

    original = _client.BusClient.request

    async def request(self, topic, data=None, *, timeout=None, qos=1):
        return await original(self, topic, data, timeout=1e9, qos=qos)

    monkeypatch.setattr(_client.BusClient, "request", request)


@pytest.fixture
def dedup_forgets_on_reconnect(monkeypatch):
    """7. Receive dedup that starts afresh with each connection, so a redelivery gets through."""
    from system.bus import _client, _dedup

    original = _client.BusClient._on_open

    async def on_open(self, link):
        self._dedup = _dedup.Deduplicator(self.settings.dedup_ttl, self.settings.dedup_max)
        return await original(self, link)

    monkeypatch.setattr(_client.BusClient, "_on_open", on_open)


@pytest.fixture
def will_says_online(monkeypatch):
    """8 (the real bug beside the false alarm): a last will that announces 'online'."""
    from system.bus import _client

    original = _client.BusClient._availability

    def availability(self, status):
        return original(self, "online")

    monkeypatch.setattr(_client.BusClient, "_availability", availability)


# -- the hunts --------------------------------------------------------------------------------


def test_accounting_catches_a_queue_that_evicts_silently(silent_eviction, tmp_path):
    seed, result = hunt(overflowing(), "accounting", tmp_path)
    assert "lost silently" in result["detail"] and result["first"]["event"] == "handover"


def test_overflow_catches_latest_keeping_the_oldest(latest_keeps_oldest, tmp_path):
    seed, result = hunt(overflowing(), "overflow", tmp_path)
    assert "latest evicted" in result["detail"] and "not newer" in result["detail"]


def test_overflow_catches_block_that_drops(monkeypatch, tmp_path):
    from system.bus import _flow

    original = _flow.FlowQueue.offer

    def offer(self, topic, value, *, control=None):  # block behaving as drop: a one-word bug
        result = original(self, topic, value, control=control)
        if result.wait and self.policy_for(topic)[1].mode == "block":
            return _flow.Offer(False, evicted=(_flow.Evicted(topic, value, "overflow", self.band_of(topic, control), "block"),))
        return result

    monkeypatch.setattr(_flow.FlowQueue, "offer", offer)
    seed, result = hunt(overflowing("block"), "overflow", tmp_path)
    assert "block dropped" in result["detail"]


def test_control_catches_health_held_behind_data(data_before_control, tmp_path):
    seed, result = hunt(overflowing(), "control", tmp_path)
    assert "behind" in result["detail"] and result["first"]["topic"].startswith("squall/health/")


def test_commands_catches_a_request_that_never_finishes(no_request_timeout, tmp_path):
    # Only both broker crashes together lose the request (the shrinker must drop both noise
    # faults at once), so this hunt gets the CLI's own budget of 60 runs (`squall sim shrink`).
    seed, result = hunt(forgetful_broker(), "commands", tmp_path, max_runs=60)
    assert "never finished" in result["detail"] and result["first"]["event"] == "command_sent"


def test_duplicates_catches_dedup_that_forgets_on_reconnect(dedup_forgets_on_reconnect, tmp_path):
    seed, result = hunt(redelivering(), "duplicates", tmp_path)
    assert "per receiver: recorder" in result["detail"]


def test_availability_catches_a_will_that_lies(will_says_online, tmp_path):
    seed, result = hunt(blind_watcher(), "availability", tmp_path)
    assert "still shown online" in result["detail"]


# -- and the unmodified code passes the same sweeps ----------------------------------------------


@pytest.mark.parametrize("make", [overflowing, lambda: overflowing("block"), redelivering, blind_watcher], ids=["latest", "block", "redelivering", "blind-watcher"])
def test_unmodified_code_passes(make):
    passes(make(), range(1, 4))


def test_unmodified_code_finishes_every_request_under_a_forgetful_broker():
    passes(forgetful_broker(), range(1, 4))
