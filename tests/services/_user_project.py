"""A user's project, written into a temp dir: MQTT services squall knows nothing about.

``shopkit`` has sensors (QoS 1 publishers with persistent sessions), a counter (a clean-session
subscriber) and a ``python -m shopkit NAME`` entry for chaos's real processes. The planted bug
(``config = { resubscribe = false }``) is the classic one: after a reconnect with a clean
session the counter does not subscribe again, so it silently receives nothing more.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SERVICES = '''\
import asyncio
import contextlib

from amqtt.client import MQTTClient
from amqtt.mqtt.constants import QOS_1


def _client(ctx):
    return MQTTClient(client_id=ctx.name, config={"auto_reconnect": False, "keep_alive": 5})


async def sensor(ctx):
    seq = 0
    while True:
        client = _client(ctx)
        try:
            await client.connect(ctx.broker_url, cleansession=False)
            while True:
                seq += 1
                await asyncio.wait_for(client.publish(f"readings/{ctx.name}", str(seq).encode(), qos=QOS_1), 10)
                await asyncio.sleep(1 + ctx.rng.random())
        except asyncio.CancelledError:
            if asyncio.current_task().cancelling():
                raise
        except Exception:
            pass
        finally:
            with contextlib.suppress(Exception):
                await client.disconnect()
        await asyncio.sleep(1)


async def counter(ctx):
    resubscribe = ctx.config.get("resubscribe", True)
    subscribed = False
    while True:
        client = _client(ctx)
        try:
            await client.connect(ctx.broker_url, cleansession=True)
            if resubscribe or not subscribed:
                await client.subscribe([("readings/#", QOS_1)])
                subscribed = True
            while True:
                await client.deliver_message(timeout_duration=10)
                ctx.note("counted")
        except asyncio.CancelledError:
            if asyncio.current_task().cancelling():
                raise
        except Exception:
            pass
        finally:
            with contextlib.suppress(Exception):
                await client.disconnect()
        await asyncio.sleep(1)


def not_async(ctx):
    return None


async def two_args(ctx, extra):
    return None
'''

MAIN = '''\
import asyncio
import sys

from sim.services import context_from_env

from shopkit import services

asyncio.run(getattr(services, sys.argv[1])(context_from_env()))
'''

CHECKS = '''\
def counter_heard_both_sensors(h):
    m = h.mqtt
    got = m[(m.type == "PUBLISH") & (m.dir == "out") & (m.client == "counter")]
    heard = set(got.topic)
    return {"heard_sensor_0": "readings/sensor-0" in heard, "heard_sensor_1": ("readings/sensor-1" in heard, f"topics heard: {sorted(heard)}")}


def raises(h):
    raise KeyError("no such column")
'''


SWARM = """
[swarm]
kinds = ["partition", "crash", "toxic"]
per_minute = 3
partition_hosts = ["broker", "counter", "sensor-0", "sensor-1"]
crash_hosts = ["counter", "sensor-1"]
targets = ["broker:1883", "counter<->broker"]
"""


def scenario(*, bug: bool = False, swarm: bool = True, extra: str = "", package: str = "shopkit", sensor: str = "sensor", counter: str = "counter", checks: bool = True) -> str:
    """Two sensors (``sensor-0``, ``sensor-1``; real processes in chaos) and a counter."""
    text = f"""\
name = "{package}"
duration = 90
swarm_quiet = 30

[chaos]
duration = 8

[[services]]
name = "sensor"
entry = "{package}.services:{sensor}"
command = ["{sys.executable}", "-m", "{package}", "{sensor}"]
replicas = 2

[[services]]
name = "counter"
entry = "{package}.services:{counter}"
{"config = { resubscribe = false }" if bug else ""}
"""
    if checks:
        text += '\n[[checks.custom]]\nentry = "shopkit_checks:counter_heard_both_sensors"\n'
    return text + (SWARM if swarm else "") + extra


def make_project(root: Path) -> Path:
    """The project folder: package, checks, a good and a buggy scenario."""
    pkg = root / "shopkit"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "services.py").write_text(SERVICES)
    (pkg / "__main__.py").write_text(MAIN)
    (root / "shopkit_checks.py").write_text(CHECKS)
    (root / "good.toml").write_text(scenario())
    (root / "buggy.toml").write_text(scenario(bug=True))
    return root


def squall(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """The squall CLI as a user runs it, from the project folder (this worktree's squall first)."""
    repo = Path(__file__).resolve().parents[2]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(repo), env.get("PYTHONPATH", "")) if p)
    return subprocess.run([sys.executable, "-m", "sim.cli", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)


# ---- the clients people use: an aiomqtt subscriber and a paho-mqtt publisher driven from asyncio

CLIENT_SERVICES = '''\
import asyncio

import aiomqtt
import paho.mqtt.client as mqtt


async def aio_counter(ctx):
    """aiomqtt's documented reconnect loop; the planted bug subscribes on the first connect only."""
    resubscribe = ctx.config.get("resubscribe", True)
    subscribed = False
    client = aiomqtt.Client(ctx.broker_host, ctx.broker_port, identifier=ctx.name, keepalive=5, timeout=5)
    while True:
        try:
            async with client:
                if resubscribe or not subscribed:
                    await client.subscribe("readings/#", qos=1)
                    subscribed = True
                async for message in client.messages:
                    ctx.note("counted", topic=str(message.topic))
        except aiomqtt.MqttError:
            await asyncio.sleep(2)


async def paho_sensor(ctx):
    """paho-mqtt 2.x on asyncio, as paho's loop_asyncio example drives it; persistent session."""
    loop = asyncio.get_running_loop()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=ctx.name, clean_session=False)
    misc = []

    async def misc_loop():
        while client.loop_misc() == mqtt.MQTT_ERR_SUCCESS:
            await asyncio.sleep(1)

    def on_socket_open(c, userdata, sock):
        loop.add_reader(sock, c.loop_read)
        misc.append(loop.create_task(misc_loop()))

    def on_socket_close(c, userdata, sock):
        loop.remove_reader(sock)
        for task in misc:
            task.cancel()
        misc.clear()

    def reconnect():
        try:
            client.reconnect()
        except OSError:
            loop.call_later(2, reconnect)

    client.on_socket_open = on_socket_open
    client.on_socket_close = on_socket_close
    client.on_socket_register_write = lambda c, u, sock: loop.add_writer(sock, c.loop_write)
    client.on_socket_unregister_write = lambda c, u, sock: loop.remove_writer(sock)
    client.on_disconnect = lambda c, u, flags, reason, props: loop.call_later(2, reconnect)
    try:
        client.connect(ctx.broker_host, ctx.broker_port, keepalive=5)
    except OSError:
        loop.call_later(2, reconnect)
    seq = 0
    while True:
        await asyncio.sleep(1 + ctx.rng.random())
        if client.is_connected():
            seq += 1
            client.publish(f"readings/{ctx.name}", str(seq).encode(), qos=1)
'''


def client_scenario(*, bug: bool = False) -> str:
    return scenario(bug=bug, package="clientkit", sensor="paho_sensor", counter="aio_counter", checks=False)


def make_client_project(root: Path) -> Path:
    pkg = root / "clientkit"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "services.py").write_text(CLIENT_SERVICES)
    (pkg / "__main__.py").write_text(MAIN.replace("shopkit", "clientkit"))
    (root / "good.toml").write_text(client_scenario())
    (root / "buggy.toml").write_text(client_scenario(bug=True))
    return root


def clients_run_in_sim() -> bool:
    """Whether this squall runs paho/aiomqtt in virtual time (simulated sockets, add_reader)."""
    import asyncio
    import socket

    from sim import World

    async def main() -> bool:
        a, b = socket.socketpair()
        try:
            loop = asyncio.get_running_loop()
            loop.add_reader(a, lambda: None)
            loop.remove_reader(a)
            return True
        except Exception:  # noqa: BLE001 - sim.Unsupported, or no simulated socketpair
            return False
        finally:
            a.close()
            b.close()

    try:
        return bool(World(seed=1).run(main).value)
    except Exception:  # noqa: BLE001
        return False
