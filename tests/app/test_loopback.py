"""A smaller set for real: the app, the supervisor and the fleet on loopback TCP with the
embedded broker (port 0), and ``squall system up`` as a subprocess watched over MQTT."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _app_support import Collect, Recorder, bus
from amqtt.client import MQTTClient
from pydantic import BaseModel

from system import RequestFailed
from system.app import App, Router
from system.broker import EmbeddedBroker
from system.fleet import FleetConfig, Room, fleet_services
from system.supervisor import Supervisor

WAIT = 30.0  # generous: a loaded 2-core machine


class Dim(BaseModel):
    level: int
    fade: float = 0.5


def test_app_routes_typed_commands_and_triggered_telemetry_on_loopback():
    async def main():
        broker = EmbeddedBroker(host="127.0.0.1", port=0)
        await broker.start()
        url = f"mqtt://127.0.0.1:{broker.port}"
        try:
            app = App(bus("lb-svc", url=url), prefix="house")
            lights = app.include(Router(prefix="lights"))
            lamp = lights.device("lamp")
            other = app.include(Router(prefix="blinds")).device("lamp")
            calls = []

            @lamp.command("dim")
            def dim(cmd: Dim) -> Dim:
                return cmd

            @other.command("dim")
            def other_dim(cmd: Dim) -> dict:
                calls.append(cmd)
                return {}

            @lamp.telemetry("level")
            def level() -> dict:
                return {"level": 3}

            got = Collect()
            async with app, bus("lb-client", url=url) as client:
                await app.bus.wait_connected(WAIT)
                await client.subscribe("house/lights/lamp/telemetry/#", got)
                reply = await client.request(
                    "house/lights/lamp/cmd/dim", {"level": 7}, timeout=WAIT
                )
                with pytest.raises(
                    RequestFailed, match="invalid payload for dim: level"
                ):
                    await client.request(
                        "house/lights/lamp/cmd/dim", {"level": "max"}, timeout=WAIT
                    )
                await client.publish("house/lights/lamp/trigger/level", None)
                await got.wait_for(1, WAIT)
            return reply.data, got.items, calls
        finally:
            await broker.stop()

    reply, items, calls = asyncio.run(main())
    assert reply == {"level": 7, "fade": 0.5}
    assert items == [("house/lights/lamp/telemetry/level", {"level": 3})]
    assert calls == []  # the other router's device saw nothing


def test_supervised_fleet_closes_the_loop_on_loopback(tmp_path):
    events = Recorder()

    async def main():
        broker = EmbeddedBroker(host="127.0.0.1", port=0)
        await broker.start()
        url = f"mqtt://127.0.0.1:{broker.port}"
        config = FleetConfig(
            rooms=1, sensors_per_room=1, telemetry_interval=0.2, control_interval=0.3
        )
        cold = {"r1": Room("r1", initial=15.0, outside=config.outside)}
        sup = Supervisor(
            fleet_services(config, url, rng_seed=1, rooms=cold),
            data_root=tmp_path,
            observer=events,
        )
        try:
            await sup.start()
            loop = asyncio.get_running_loop()
            deadline = loop.time() + WAIT
            while (
                not events.of("command_done", outcome="ok") and loop.time() < deadline
            ):
                await asyncio.sleep(0.1)
            states = dict(sup.states)
        finally:
            await sup.stop()
            await broker.stop()
        return states

    states = asyncio.run(main())
    assert set(states.values()) == {"running"}
    done = events.of("command_done", outcome="ok")
    assert done and done[0].topic == "fleet/r1/heater/cmd/set"
    assert [e.new for e in events.of("device_state", device="fleet/r1/heater")][:1] == [
        "on"
    ]
    assert (tmp_path / "recorder" / "telemetry.db").exists()
    assert all(e.new == "stopped" for e in events.of("service") if e.old == "stopping")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _squall(*args: str) -> list[str]:
    return [sys.executable, "-c", "from sim.cli import main; main()", *args]


def test_system_up_serves_the_fleet_until_ctrl_c(tmp_path):
    port = _free_port()
    proc = subprocess.Popen(
        _squall(
            "system",
            "up",
            "--port",
            str(port),
            "--rooms",
            "1",
            "--sensors-per-room",
            "2",
            "--data",
            str(tmp_path),
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "COLUMNS": "120"},
    )

    async def watch():
        client = MQTTClient(client_id="lb-watcher", config={"auto_reconnect": False})
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT
        while True:
            try:
                await client.connect(f"mqtt://127.0.0.1:{port}")
                break
            except Exception:
                if loop.time() > deadline or proc.poll() is not None:
                    raise
                await asyncio.sleep(0.2)
        await client.subscribe([("fleet/+/+/telemetry/temperature", 1)])
        msg = await client.deliver_message(timeout_duration=WAIT)
        await client.disconnect()
        return msg.topic

    try:
        topic = asyncio.run(watch())
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=WAIT)
    assert topic in (
        "fleet/r1/sensor-1/telemetry/temperature",
        "fleet/r1/sensor-2/telemetry/temperature",
    )
    assert proc.returncode == 0, err.decode()
    text = out.decode()
    assert f"broker on mqtt://127.0.0.1:{port}" in text and "stopped:" in text
    assert (Path(tmp_path) / "heater-r1" / "heater-r1.db").exists()


def test_system_up_on_a_taken_port_is_one_line_and_exit_2():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run(
            _squall("system", "up", "--port", str(port)),
            capture_output=True,
            timeout=WAIT,
            check=False,
        )
    assert proc.returncode == 2
    err = proc.stderr.decode().strip()
    assert (
        err.startswith(f"squall: error: cannot listen on 127.0.0.1:{port}")
        and "--port" in err
    )
    assert len(err.splitlines()) == 1


_COMMAND = '{"id":"%s","seq":%d,"ts":0,"source":"cli-user","kind":"request","correlation_id":"%s"}'


@pytest.mark.skipif(
    shutil.which("mosquitto_pub") is None,
    reason="mosquitto clients not found: apt-get install mosquitto-clients",
)
def test_any_mqtt_client_can_watch_and_command_the_fleet(tmp_path):
    port = _free_port()
    proc = subprocess.Popen(
        _squall(
            "system",
            "up",
            "--port",
            str(port),
            "--rooms",
            "1",
            "--sensors-per-room",
            "1",
            "--data",
            str(tmp_path),
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    mqtt = ["-h", "127.0.0.1", "-p", str(port)]
    try:
        deadline = time.monotonic() + WAIT
        while True:  # mosquitto_sub exits at once while the broker is not listening yet
            reading = subprocess.run(
                [
                    "mosquitto_sub",
                    *mqtt,
                    "-t",
                    "fleet/+/+/telemetry/temperature",
                    "-C",
                    "1",
                    "-W",
                    str(int(WAIT)),
                ],
                capture_output=True,
                check=False,
                timeout=WAIT + 5,
            )
            if (
                reading.returncode == 0
                or time.monotonic() > deadline
                or proc.poll() is not None
            ):
                break
            time.sleep(0.2)
        replies = subprocess.Popen(
            [
                "mosquitto_sub",
                *mqtt,
                "-t",
                "squall/reply/cli-user",
                "-C",
                "1",
                "-W",
                str(int(WAIT)),
            ],
            stdout=subprocess.PIPE,
        )
        for n in range(
            int(WAIT * 2)
        ):  # until the subscriber above is in place and a reply comes back
            subprocess.run(
                [
                    "mosquitto_pub",
                    *mqtt,
                    "-t",
                    "fleet/r1/heater/cmd/on",
                    "-q",
                    "1",
                    "-m",
                    _COMMAND % (f"c{n}", n, f"k{n}"),
                ],
                check=True,
                timeout=WAIT,
            )
            try:
                reply, _ = replies.communicate(timeout=0.5)
                break
            except subprocess.TimeoutExpired:
                continue
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=WAIT)
    assert json.loads(reading.stdout)["data"]["room"] == "r1"
    answer = json.loads(reply)
    assert answer["kind"] == "reply" and answer["data"] == {"room": "r1", "on": True}
    assert proc.returncode == 0
