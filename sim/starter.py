"""`squall init DIR --package NAME`: a starter scenario, a user check and a pytest test for a
package of MQTT services. Files that exist are never overwritten; an example package is
written only when NAME does not exist yet, so the scenario runs at once.
"""

from __future__ import annotations

import keyword
from pathlib import Path

from sim.errors import BadInput

SCENARIO = '''\
# squall scenario for {package}: your services, the embedded broker, faults, checks.
#   squall sim run squall.toml                      one seeded run (report in squall-runs/)
#   squall sim sweep squall.toml --seeds 1-20       twenty seeds; failing ones print a replay command
#   squall chaos run squall.toml                    the same for real, on loopback, through a proxy
name = "{package}"
duration = 120          # virtual seconds
swarm_quiet = 40        # the last 40 s have no faults: the system must settle

# One table per program. ctx.name is the host name (use it as the MQTT client id);
# replicas = N runs hosts NAME-0 .. NAME-N-1.
[[services]]
name = "publisher"
entry = "{package}.services:publisher"
replicas = 2
# chaos only: run it as a real process instead ({{broker_url}}, {{broker_host}}, {{broker_port}}, {{name}})
command = ["python", "-m", "{package}", "publisher"]

[[services]]
name = "subscriber"
entry = "{package}.services:subscriber"

# Random faults drawn from the seed, on the hosts above.
[swarm]
kinds = ["partition", "crash", "toxic"]
per_minute = 3
partition_hosts = ["broker", "publisher-0", "publisher-1", "subscriber"]
crash_hosts = ["publisher-1", "subscriber"]
targets = ["broker:1883", "subscriber<->broker"]

# Built-in checks read the broker's record of the wire (wire_delivery, wire_duplicates, wire_order,
# wire_latency, wire_sessions, wire_resubscribe, wire_wills, wire_comes_back).
# Your own: a function of the history, in squall_checks.py.
[[checks.custom]]
entry = "squall_checks:subscriber_keeps_up"
'''

CHECKS = '''\
"""Your checks over a run's history (squall calls them after every run).

``h.mqtt`` is a pandas DataFrame of every packet the broker saw (columns t, type, dir,
client, topic, qos, pid, dup, retain, size, hash); ``h.records`` is the raw history.
Return a bool, (ok, detail), or {{name: bool | (ok, detail)}}.
"""


def subscriber_keeps_up(h):
    m = h.mqtt
    published = m[(m.type == "PUBLISH") & (m.dir == "in")]
    received = m[(m.type == "PUBLISH") & (m.dir == "out") & (m.client == "subscriber")]
    ok = len(received) >= 0.5 * len(published)
    return ok, f"subscriber got {{len(received)}} of {{len(published)}} readings"
'''

TEST = '''\
"""Your services under squall, one test per seed (pytest picks up squall's plugin by itself)."""

from pathlib import Path

import pytest

SCENARIO = Path(__file__).resolve().parent.parent / "squall.toml"


@pytest.mark.squall_seeds(5)  # seeds 1..5; more with: pytest --squall-seeds 1-50
def test_every_check_holds(squall_scenario):
    squall_scenario(SCENARIO)  # fails naming each failed check and the replay command
'''

INIT = '''\
"""{package}: MQTT services (the example squall init wrote; replace it with your own)."""
'''

MAIN = '''\
"""python -m {package} NAME: run one service as a process (what squall chaos runs for command = [...])."""

import asyncio
import sys

from sim.services import context_from_env

from {package} import services

asyncio.run(getattr(services, sys.argv[1])(context_from_env()))
'''

SERVICES = '''\
"""Two example services on amqtt's client. Each is an async function of a squall ServiceContext:
ctx.name (client id), ctx.broker_url, ctx.rng (seeded: use it for every random choice),
ctx.disk (a folder that survives crashes), ctx.config (the scenario's config table)."""

import asyncio
import contextlib

from amqtt.client import MQTTClient
from amqtt.mqtt.constants import QOS_1


async def publisher(ctx):
    """Publishes a reading every 1-2 s at QoS 1; a reading not acknowledged within 10 s means
    the connection is dead: reconnect (its session is persistent, so nothing queued is lost)."""
    seq = 0
    while True:
        client = MQTTClient(client_id=ctx.name, config={{"auto_reconnect": False, "keep_alive": 5}})
        try:
            await client.connect(ctx.broker_url, cleansession=False)
            while True:
                seq += 1
                await asyncio.wait_for(client.publish(f"readings/{{ctx.name}}", str(seq).encode(), qos=QOS_1), 10)
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


async def subscriber(ctx):
    """Counts readings; after every reconnect it subscribes again (its session is clean).
    amqtt's client does not always notice a dead connection, and readings come every 1-2 s,
    so 10 s of silence counts as one: reconnect."""
    while True:
        client = MQTTClient(client_id=ctx.name, config={{"auto_reconnect": False, "keep_alive": 5}})
        try:
            await client.connect(ctx.broker_url, cleansession=True)
            await client.subscribe([("readings/#", QOS_1)])
            while True:
                await client.deliver_message(timeout_duration=10)
        except asyncio.CancelledError:
            if asyncio.current_task().cancelling():
                raise  # stopped (or its host crashed): not a lost connection
        except Exception:
            pass
        finally:
            with contextlib.suppress(Exception):
                await client.disconnect()
        await asyncio.sleep(1)
'''


def write_starter(folder: Path, package: str) -> list[tuple[Path, bool]]:
    """Write the starter files; returns (path, written) for each (False: it existed, kept)."""
    if not package.isidentifier() or keyword.iskeyword(package):
        raise BadInput(f"--package {package!r}: give an importable Python package name, like my_service")
    if folder.exists() and not folder.is_dir():
        raise BadInput(f"{folder} is a file; give a folder for the starter files")
    files: dict[Path, str] = {
        folder / "squall.toml": SCENARIO,
        folder / "squall_checks.py": CHECKS,
        folder / "tests" / "test_squall.py": TEST,
    }
    pkg = folder / package
    if not pkg.exists() and not (folder / f"{package}.py").exists():
        files[pkg / "__init__.py"] = INIT
        files[pkg / "services.py"] = SERVICES
        files[pkg / "__main__.py"] = MAIN
    out = []
    for path, template in files.items():
        if path.exists():
            out.append((path, False))
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(template.format(package=package))
        out.append((path, True))
    return out
