"""The MQTT clients people use, unmodified, in virtual time: paho-mqtt 2.x on asyncio,
aiomqtt 2.x, gmqtt and amqtt connect to the embedded broker, subscribe, publish at QoS
0/1/2, and come back with their own reconnect logic after a partition and a broker crash."""

from __future__ import annotations

import asyncio
import itertools
import subprocess
import sys
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from client_worlds import CLIENTS, run

import sim
from sim import World

HERE = Path(__file__).parent


@pytest.mark.parametrize("kind", sorted(CLIENTS))
def test_client_publishes_at_every_qos_and_survives_a_partition_and_a_broker_crash(kind):
    log, result = run(kind, seed=1)
    before, between, after = log.phases()
    # Subscribed at QoS 2, each QoS arrives as published; and the client works in every act.
    assert {qos for _, _, qos in log.received} == {0, 1, 2}
    assert before >= 15 and between >= 15 and after >= 15, (before, between, after)
    # Before any fault, nothing is lost or doubled, in order.
    first = [n for t, n, _ in log.received if t < log.partition[0]]
    assert first == list(range(len(first)))
    assert len(log.connects) >= 3  # the first connect, after the partition, after the restart
    assert not [e for e in result.errors if "task" in e], result.errors


@pytest.mark.parametrize("kind", sorted(CLIENTS))
def test_client_world_is_the_same_run_in_another_process(kind):
    here = run(kind, seed=7)[1].trace_hash
    there = subprocess.run(
        [sys.executable, str(HERE / "client_worlds.py"), kind, "7"], capture_output=True, text=True, check=True, env={**__import__("os").environ, "PYTHONHASHSEED": "123"}
    ).stdout.split()[-1]
    assert here == there
    assert run(kind, seed=8)[1].trace_hash != here


@pytest.mark.parametrize("mode", ["loop_start", "loop_forever", "loop", "loop_forever_unconnected"])
def test_paho_threaded_and_blocking_loops_are_refused_with_the_way_out(mode):
    from client_worlds import _broker

    world = World(seed=1)
    world.host("broker").spawn(_broker)

    async def main():
        await asyncio.sleep(1)
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="blocking")
        if mode == "loop_forever_unconnected":
            client.loop_forever(retry_first_connection=True)
        client.connect("broker", 1883)
        getattr(client, mode)()

    with pytest.raises(sim.Unsupported) as err:
        world.run(main, until=5)
    message = str(err.value)
    assert "asyncio" in message and "chaos mode" in message and "loop_forever()" in message, message


def test_a_thread_started_on_a_host_is_refused_and_threads_work_again_after_the_run():
    import threading

    world = World(seed=1)

    async def main():
        threading.Thread(target=lambda: None, name="worker").start()

    with pytest.raises(sim.Unsupported, match="thread 'worker'.*virtual clock"):
        world.run(main, until=5)
    t = threading.Thread(target=lambda: None)
    t.start()
    t.join()


def test_paho_keepalive_runs_on_the_virtual_clock():
    """An hour of idle keepalive in microseconds: paho pings every keepalive period."""
    world = World(seed=2)
    from client_worlds import _broker

    world.host("broker").spawn(_broker)
    pings: list[float] = []

    async def main():
        await asyncio.sleep(1)
        loop = asyncio.get_running_loop()
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="idle")
        client.on_socket_open = lambda c, u, s: loop.add_reader(s, c.loop_read)
        client.on_socket_close = lambda c, u, s: loop.remove_reader(s)
        client.on_socket_register_write = lambda c, u, s: loop.add_writer(s, c.loop_write)
        client.on_socket_unregister_write = lambda c, u, s: loop.remove_writer(s)
        client.on_log = lambda c, u, level, text: pings.append(world.now) if "PINGREQ" in text else None
        client.connect("broker", 1883, keepalive=60)
        for _ in range(3600):
            client.loop_misc()
            await asyncio.sleep(1)
        return client.is_connected()

    result = world.run(main)
    assert result.value is True
    assert 55 <= len(pings) <= 61
    assert all(59 <= b - a <= 61 for a, b in itertools.pairwise(pings))


@pytest.mark.parametrize("library", ["paho", "aiomqtt", "gmqtt"])
def test_the_client_bench_workload_delivers_every_message_in_both_worlds(library):
    from sim.bench.clients import run_real, run_sim

    # Each workload waits for its subscriber to count every message, or it never returns.
    assert run_sim(library, 30)[0] > 0
    assert run_real(library, 30) > 0
