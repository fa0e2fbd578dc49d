"""Same seed, same run, byte for byte, whatever the process; pins undone after the run."""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import random
import subprocess
import sys
import time
import uuid

import pytest

from sim import World, first_divergence

PROGRAM = r"""
import json, sys, logging
logging.disable(logging.CRITICAL)
from sim.demo import run_devices
result, delivered = run_devices(seed=int(sys.argv[1]), devices=4, seconds=20)
print(json.dumps({"hash": result.trace_hash, "delivered": delivered}))
"""


def run_in_fresh_process(seed: int, hashseed: str) -> dict:
    env = {**os.environ, "PYTHONHASHSEED": hashseed}
    out = subprocess.run([sys.executable, "-c", PROGRAM, str(seed)], env=env, capture_output=True, text=True, timeout=120, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_same_seed_same_trace_hash_across_processes_and_hash_seeds():
    runs = [run_in_fresh_process(11, h) for h in ("0", "1", "2")]
    assert runs[0]["delivered"] > 0
    assert runs[0] == runs[1] == runs[2]


def test_a_different_seed_gives_a_different_trace():
    assert run_in_fresh_process(11, "0")["hash"] != run_in_fresh_process(12, "0")["hash"]


def test_same_seed_twice_in_one_process_gives_identical_traces():
    from sim.demo import run_devices

    a, _ = run_devices(seed=4, devices=3, seconds=10)
    b, _ = run_devices(seed=4, devices=3, seconds=10)
    assert a.trace_hash == b.trace_hash


def test_code_inside_the_run_sees_virtual_wall_clock_and_seeded_randomness():
    async def main():
        t0, d0 = time.time(), datetime.datetime.now(datetime.timezone.utc)
        await asyncio.sleep(3600)
        return {
            "elapsed": time.time() - t0,
            "dt": (datetime.datetime.now(datetime.timezone.utc) - d0).total_seconds(),
            "year": d0.year,
            "random": random.random(),
            "fresh_random": random.Random().random(),
            "uuid": str(uuid.uuid4()),
            "urandom": os.urandom(8).hex(),
        }

    a = World(seed=9).run(main).value
    b = World(seed=9).run(main).value
    c = World(seed=10).run(main).value
    assert a["elapsed"] == pytest.approx(3600) and a["dt"] == pytest.approx(3600)
    assert a["year"] == 2026
    assert a == b
    assert a["uuid"] != c["uuid"] and a["random"] != c["random"] and a["urandom"] != c["urandom"]


def test_after_the_run_the_real_clock_and_randomness_are_back():
    async def main():
        await asyncio.sleep(10)
        return time.time()

    before = time.time()
    virtual = World(seed=1).run(main).value
    after = time.time()
    assert virtual < before  # the run's clock starts at its epoch, in the past
    assert after >= before
    assert os.urandom(16) != os.urandom(16)
    assert uuid.uuid4() != uuid.uuid4()


def test_first_divergence_names_the_first_differing_event():
    def trace(seed: int, payload: bytes):
        world = World(seed=seed)

        async def sink(reader, writer):
            await reader.read()

        async def server():
            await (await asyncio.start_server(sink, "0.0.0.0", 1)).serve_forever()

        world.host("srv").spawn(server)

        async def main():
            await asyncio.sleep(0.1)
            _, w = await asyncio.open_connection("srv", 1)
            w.write(b"same")
            await asyncio.sleep(1)
            w.write(payload)
            await asyncio.sleep(1)

        return world.run(main).trace

    same = first_divergence(trace(1, b"abc").events, trace(1, b"abc").events)
    assert same is None
    diff = first_divergence(trace(1, b"abc").events, trace(1, b"abd").events)
    assert diff is not None and diff.left.kind == "send" and diff.left.t == pytest.approx(1.101, abs=0.01)
    assert "diverge at event" in str(diff)


def test_the_first_run_of_a_seed_in_a_process_equals_the_next():
    """Regression: a module drawing randomness once, lazily (crypt, imported by amqtt's broker
    start), shifted every later draw of the first run in a process."""
    program = r"""
import json, logging
logging.disable(logging.CRITICAL)
from sim.runner import run_scenario
from sim.scenario import load_scenario
sc = load_scenario("smoke").model_copy(update={"duration": 5.0})
print(json.dumps([run_scenario(sc, 1, keep_trace=False, plots=False).report["trace_hash"] for _ in range(2)]))
"""
    out = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=120, check=True)
    first, second = json.loads(out.stdout.strip().splitlines()[-1])
    assert first == second
