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


def scenario(*, bug: bool = False, swarm: bool = True, extra: str = "") -> str:
    text = f"""\
name = "shopkit"
duration = 90
swarm_quiet = 30

[chaos]
duration = 6

[[services]]
name = "sensor"
entry = "shopkit.services:sensor"
command = ["{sys.executable}", "-m", "shopkit", "sensor"]
replicas = 2

[[services]]
name = "counter"
entry = "shopkit.services:counter"
{"config = { resubscribe = false }" if bug else ""}

[[checks.custom]]
entry = "shopkit_checks:counter_heard_both_sensors"
"""
    if swarm:
        text += """
[swarm]
kinds = ["partition", "crash", "toxic"]
per_minute = 3
partition_hosts = ["broker", "counter", "sensor-0", "sensor-1"]
crash_hosts = ["counter", "sensor-1"]
targets = ["broker:1883", "counter<->broker"]
"""
    return text + extra


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
