"""The reference fleet in the simulated world: the controller closes the loop, the heater's
state survives its crash, the recorder stores telemetry once, and runs are deterministic."""

from __future__ import annotations

import asyncio
import json
import sqlite3

import pytest
from _app_fleet import fleet_world
from _app_support import real_errors
from pydantic import ValidationError

from system.fleet import FleetConfig, decide, fleet_services


def test_the_controller_keeps_every_room_in_band_over_a_virtual_hour():
    config = FleetConfig(
        rooms=2, sensors_per_room=2, telemetry_interval=5.0, control_interval=10.0
    )
    world, events, _ = fleet_world(config, seed=3)
    result = world.run(until=3600)
    assert real_errors(result) == []
    temps = events.of("room_temperature")
    assert {e.room for e in temps} == {"r1", "r2"}
    settled = [e for e in temps if e.at >= 900]
    assert len(settled) > 2 * 500
    low, high = config.band
    assert all(low <= e.temperature <= high for e in settled), min(
        e.temperature for e in settled
    )
    # the loop really cycles: each heater went on and off several times
    switches = [e for e in events.of("device_state") if e.machine == "power"]
    for room in ("r1", "r2"):
        assert len([e for e in switches if e.device == f"fleet/{room}/heater"]) >= 4
    done = events.of("command_done")
    assert done and all(e.outcome == "ok" for e in done)
    assert len(done) == len(events.of("command_sent"))
    assert all(json.dumps(e.to_dict()) for e in events.events)


def test_a_crashed_heater_comes_back_in_its_commanded_state_and_the_loop_recovers():
    config = FleetConfig(
        rooms=1,
        sensors_per_room=1,
        telemetry_interval=2.0,
        control_interval=4.0,
        command_timeout=2.0,
    )
    world, events, _ = fleet_world(config, seed=5)

    def crash_when_on():
        on = [e for e in events.of("device_state", new="on")]
        if on and not getattr(crash_when_on, "done", False):
            crash_when_on.done = True
            world.crash("heater-r1")
            world.after(60, world.restart, "heater-r1")
        else:
            world.after(5, crash_when_on)

    world.after(5, crash_when_on)
    result = world.run(until=1800)
    assert real_errors(result) == []
    crash_at = events.of("device_state", new="on")[0].at
    restored = [e for e in events.of("room_temperature") if e.at > crash_at + 60]
    assert (
        restored and restored[0].heater is True
    )  # restored from the heater's sqlite store
    timeouts = [e for e in events.of("command_done") if e.outcome == "timeout"]
    late_ok = [
        e
        for e in events.of("command_done")
        if e.outcome == "ok" and e.at > crash_at + 60
    ]
    assert late_ok  # the controller commands the heater again after it returned
    assert all(e.latency == pytest.approx(2.0) for e in timeouts)
    low, high = config.band
    assert all(
        low - 0.5 <= e.temperature <= high + 0.5
        for e in events.of("room_temperature")
        if e.at > 900
    )


def test_the_recorder_stores_each_telemetry_message_once():
    config = FleetConfig(
        rooms=1, sensors_per_room=2, telemetry_interval=5.0, payload_bytes=64
    )
    world, events, _ = fleet_world(config, seed=2)

    def bounce_recorder():
        world.crash("recorder")
        world.restart("recorder")

    world.at(100, bounce_recorder)

    async def main():
        await asyncio.sleep(300)
        world.crash(
            "recorder"
        )  # a crash flushes nothing: only rows written by then count
        db = sqlite3.connect(world.host("recorder").disk / "telemetry.db")
        rows = db.execute("SELECT topic, source, seq, data FROM telemetry").fetchall()
        ids = {
            r[0]
            for r in db.execute(
                "SELECT id FROM telemetry WHERE topic LIKE '%/temperature'"
            )
        }
        db.close()
        return rows, ids

    result = world.run(main, until=400)
    assert real_errors(result) == []
    rows, stored = result.value
    per_source = {}
    for topic, source, seq, data in rows:
        per_source.setdefault(source, []).append(seq)
    assert {"sensor-r1-1", "sensor-r1-2", "heater-r1"} <= set(per_source)
    for seqs in per_source.values():
        assert len(seqs) == len(set(seqs))  # never twice
    readings = [
        json.loads(d) for t, _, _, d in rows if t.endswith("/telemetry/temperature")
    ]
    assert readings and all(len(r["pad"]) == 64 for r in readings)
    published = {
        e.id
        for e in events.of("publish")
        if e.kind == "telemetry" and e.client.startswith("sensor")
    }
    assert stored <= published
    # readings sent while the recorder was up for good (after its restart settled) are all stored
    later = {
        e.id
        for e in events.of("publish")
        if e.kind == "telemetry" and e.client.startswith("sensor") and 130 < e.at < 280
    }
    assert later <= stored


def test_same_seed_same_run():
    config = FleetConfig(rooms=1, sensors_per_room=2)

    def run(seed):
        world, events, _ = fleet_world(config, seed=seed)
        result = world.run(until=120)
        return result.trace_hash, [e.to_dict() for e in events.of("room_temperature")]

    first, second, other = run(4), run(4), run(5)
    assert first == second
    assert first[0] != other[0]


def test_fleet_services_names_kinds_and_dependencies():
    specs = fleet_services(
        FleetConfig(rooms=2, sensors_per_room=3), "mqtt://broker:1883", rng_seed=1
    )
    names = [s.name for s in specs]
    assert names == [
        "sensor-r1-1",
        "sensor-r1-2",
        "sensor-r1-3",
        "sensor-r2-1",
        "sensor-r2-2",
        "sensor-r2-3",
        "heater-r1",
        "heater-r2",
        "controller",
        "recorder",
    ]
    kinds = {s.name: s.kind for s in specs}
    assert (
        kinds["sensor-r2-3"] == "sensor"
        and kinds["heater-r1"] == "heater"
        and kinds["controller"] == "controller"
    )
    assert next(s for s in specs if s.name == "controller").depends_on == (
        "heater-r1",
        "heater-r2",
    )


def test_fleet_config_rejects_unknown_fields_and_a_bad_band():
    with pytest.raises(ValidationError, match="extra"):
        FleetConfig(roms=2)
    with pytest.raises(ValidationError, match="low < high"):
        FleetConfig(band=(23, 19))
    with pytest.raises(ValidationError):
        FleetConfig(qos=2)


@pytest.mark.parametrize(
    ("average", "heater", "expected"),
    [
        (None, False, None),
        (19.5, False, True),
        (22.5, True, False),
        (21.0, True, None),
        (21.0, False, None),
    ],
)
def test_decide_switches_with_hysteresis(average, heater, expected):
    assert decide(average, heater, (19.0, 23.0)) is expected


def test_the_fleet_rides_out_a_broker_crash_and_a_late_broker():
    config = FleetConfig(
        rooms=1, sensors_per_room=2, telemetry_interval=2.0, control_interval=4.0
    )
    world, events, _ = fleet_world(config, seed=6)
    broker = world.host("broker")
    world.at(0, world.crash, "broker")  # the services start before any broker is up
    world.at(20, world.restart, "broker")
    world.at(600, world.crash, "broker")
    world.at(630, world.restart, "broker")
    result = world.run(until=1500)
    assert real_errors(result) == []
    assert broker.up
    reconnected = {e.client for e in events.of("reconnect") if e.at > 630}
    assert {
        "sensor-r1-1",
        "sensor-r1-2",
        "heater-r1",
        "controller",
        "recorder",
    } <= reconnected
    after = [e for e in events.of("command_done") if e.at > 640]
    before = [e for e in events.of("command_done") if e.at < 600]
    assert before and after and all(e.outcome == "ok" for e in after)
    low, high = config.band
    late = [e for e in events.of("room_temperature") if e.at > 900]
    assert late and all(low <= e.temperature <= high for e in late)
