"""The bus client's pure parts: topic matching, backoff, dedup, settings, observer events."""

from __future__ import annotations

import dataclasses
import json
import logging
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

import system.observer as obs
from system import BusSettings, LoggingObserver
from system.bus import matches
from system.bus._backoff import Backoff
from system.bus._dedup import Deduplicator


@pytest.mark.parametrize(
    ("pattern", "topic", "expected"),
    [
        ("a/b", "a/b", True),
        ("a/+", "a/b", True),
        ("a/+", "a/b/c", False),
        ("a/#", "a", True),
        ("a/#", "a/b/c", True),
        ("+/+", "a/b", True),
        ("#", "a/b", True),
        ("#", "$SYS/x", False),
        ("+/x", "$SYS/x", False),
        ("$SYS/#", "$SYS/x", True),
        ("a/+/c", "a//c", True),
        ("a/b", "a/c", False),
    ],
)
def test_topic_filters_follow_mqtt(pattern: str, topic: str, expected: bool) -> None:
    assert matches(pattern, topic) is expected


@given(st.integers(min_value=1, max_value=10_000), st.integers(min_value=0, max_value=2**32))
def test_backoff_is_full_jitter_under_a_capped_exponential(attempt: int, seed: int) -> None:
    backoff = Backoff(initial=0.1, maximum=30.0, rng=random.Random(seed))
    delay = backoff.delay(attempt)
    assert 0 <= delay <= min(30.0, 0.1 * 2 ** min(attempt - 1, 60))


def test_backoff_replays_with_the_same_seed() -> None:
    a = [Backoff(rng=random.Random(7)).delay(n) for n in range(1, 20)]
    b = [Backoff(rng=random.Random(7)).delay(n) for n in range(1, 20)]
    assert a == b


@given(st.lists(st.tuples(st.sampled_from("abcdef"), st.floats(min_value=0, max_value=5)), max_size=60))
def test_dedup_flags_repeats_within_ttl_and_stays_bounded(arrivals) -> None:
    dedup = Deduplicator(ttl=1.0, max_size=4)
    now = 0.0
    last_fresh: dict[str, float] = {}
    for key, gap in arrivals:
        now += gap
        seen = dedup.seen(key, now)
        assert len(dedup) <= 4
        if not seen:
            last_fresh[key] = now
        else:  # only ever a repeat within the ttl of its first sighting
            assert now - last_fresh[key] < 1.0


def test_dedup_catches_an_immediate_duplicate() -> None:
    dedup = Deduplicator(ttl=10, max_size=10)
    assert not dedup.seen("x", 0.0)
    assert dedup.seen("x", 5.0)
    assert not dedup.seen("x", 10.0)  # expired


def test_settings_from_url_keep_the_password_secret(caplog: pytest.LogCaptureFixture) -> None:
    s = BusSettings.from_url("mqtt://bob:s3cr%40t@broker.local:1999?client_id=dev-1&keep_alive=5")
    assert (s.host, s.port, s.username, s.client_id, s.keep_alive) == ("broker.local", 1999, "bob", "dev-1", 5)
    assert s.password is not None and s.password.get_secret_value() == "s3cr@t"
    assert "s3cr" not in repr(s) and "s3cr" not in str(s) and "s3cr" not in s.address
    assert "s3cr" not in json.dumps(s.model_dump(mode="json"))
    with pytest.raises(ValueError) as bad:
        BusSettings.from_url("mqtt://bob:hunter2@host:99999")
    assert "hunter2" not in str(bad.value) and "invalid port" in str(bad.value)


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SQUALL_BUS_URL", "mqtt://u:pw@h:1234")
    monkeypatch.setenv("SQUALL_BUS_CLIENT_ID", "from-env")
    s = BusSettings()
    assert (s.host, s.port, s.username, s.client_id) == ("h", 1234, "u", "from-env")
    with pytest.raises(ValueError, match="must start with mqtt://"):
        BusSettings.from_url("http://h")


EVENTS = [
    obs.Published(client="c", at=1.0, topic="t", qos=1, retain=False, id="i", source="c", seq=0, kind="data", size=10),
    obs.Delivered(
        client="c", at=1.0, topic="t", qos=1, retain=False, id="i", source="c", seq=0, kind="data", handlers=2
    ),
    obs.Connected(client="c", at=1.0, url="mqtt://h:1", attempt=1),
    obs.Disconnected(client="c", at=1.0, reason="lost"),
    obs.Reconnected(client="c", at=1.0, attempts=3, downtime=0.5),
    obs.Dropped(client="c", at=1.0, direction="out", topic="t", reason="overflow", id="i"),
    obs.Failed(client="c", at=1.0, where="handler", error="ValueError", message="boom", topic="t"),
    obs.StateChanged(client="c", at=1.0, old="new", new="connecting"),
]


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: e.name)
def test_events_are_immutable_and_json_serialisable(event: obs.Event) -> None:
    d = event.to_dict()
    assert d["event"] == event.name and d["client"] == "c"
    assert json.loads(json.dumps(d)) == d
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.client = "other"  # type: ignore[misc]


def test_logging_observer_counts_prometheus_metrics(caplog: pytest.LogCaptureFixture) -> None:
    registry = CollectorRegistry()
    observer = LoggingObserver(registry)
    with caplog.at_level(logging.DEBUG, logger="system.bus"):
        for event in EVENTS:
            observer(event)
    assert registry.get_sample_value("squall_bus_events_total", {"client": "c", "event": "publish"}) == 1
    assert (
        registry.get_sample_value("squall_bus_dropped_total", {"client": "c", "direction": "out", "reason": "overflow"})
        == 1
    )
    assert registry.get_sample_value("squall_bus_errors_total", {"client": "c", "where": "handler"}) == 1
    assert any("boom" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)
    assert isinstance(observer, obs.Observer)
