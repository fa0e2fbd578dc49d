"""What a user of the squall pytest plugin sees: seeds, failing-seed report, replay, markers."""

from __future__ import annotations

import re

import pytest

pytest_plugins = ["pytester"]

SEEDED = """
import asyncio
import pytest
from amqtt.client import MQTTClient

@pytest.mark.squall_seeds(4)
def test_roundtrip(squall_world, squall_broker, squall_seed):
    async def main():
        url = await squall_broker.ready()
        client = MQTTClient(client_id="c", config={"auto_reconnect": False})
        await client.connect(url)
        await client.subscribe([("t", 1)])
        await client.publish("t", str(squall_seed).encode(), qos=1)
        msg = await asyncio.wait_for(client.deliver_message(), 10)
        await client.disconnect()
        return bytes(msg.data)

    got = squall_world.run(main, until=60).value
    assert squall_world.seed == squall_seed
    assert got == str(squall_seed).encode()
    assert squall_seed != BAD_SEED, "this seed breaks the service"
"""


def _module(bad_seed: int) -> str:
    return SEEDED.replace("BAD_SEED", str(bad_seed))


def test_the_seeds_marker_runs_the_test_once_per_seed_with_the_seed_in_its_id(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_svc=_module(bad_seed=-1))
    result = pytester.runpytest("-v")
    result.assert_outcomes(passed=4)
    for seed in range(1, 5):
        result.stdout.fnmatch_lines(
            [f"*test_svc.py::test_roundtrip[[]seed={seed}[]] PASSED*"]
        )


def test_a_failing_seed_prints_the_seed_and_a_replay_command_that_reruns_only_it(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_svc=_module(bad_seed=3))
    result = pytester.runpytest()
    result.assert_outcomes(passed=3, failed=1)
    out = result.stdout.str()
    assert "this seed breaks the service" in out
    result.stdout.fnmatch_lines(
        [
            "*- squall -*",
            "seed 3 failed",
            "replay this seed:  python -m pytest 'test_svc.py::test_roundtrip[[]seed=3[]]'",
            "*or:  python -m pytest test_svc.py::test_roundtrip --squall-seeds 3",
            "world: virtual time *s, trace hash *",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "*squall failing seeds*",
            "test_svc.py::test_roundtrip: seeds 3",
            "  replay: python -m pytest test_svc.py::test_roundtrip --squall-seeds 3",
        ]
    )

    # Both printed commands replay exactly the failing seed.
    command = re.search(r"replay this seed:  python -m pytest '(.+)'", out)
    assert command is not None
    again = pytester.runpytest(command.group(1))
    again.assert_outcomes(failed=1)
    only = pytester.runpytest("test_svc.py::test_roundtrip", "--squall-seeds", "3")
    only.assert_outcomes(failed=1)


def test_squall_seeds_option_overrides_the_marker(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_svc=_module(bad_seed=7))
    result = pytester.runpytest("--squall-seeds", "5-7,9", "-v")
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*[[]seed=5[]] PASSED*",
            "*[[]seed=6[]] PASSED*",
            "*[[]seed=7[]] FAILED*",
            "*[[]seed=9[]] PASSED*",
        ]
    )


def test_a_bad_seeds_option_is_one_clear_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_svc=_module(bad_seed=-1))
    result = pytester.runpytest("--squall-seeds", "three")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--squall-seeds 'three': write a range like 1-50*"])


def test_a_bad_seeds_marker_names_the_test_and_the_fix(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        test_svc="""
import pytest

@pytest.mark.squall_seeds(0)
def test_x(squall_seed):
    pass
"""
    )
    result = pytester.runpytest()
    assert result.ret != 0
    assert (
        "test_svc.py::test_x: squall_seeds: the number of seeds must be at least 1 (got 0)"
        in result.stdout.str() + result.stderr.str()
    )


def test_same_seed_same_world_across_runs(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_svc="""
import asyncio
from amqtt.client import MQTTClient

def test_hash(squall_world, squall_broker):
    async def main():
        client = MQTTClient(client_id="c", config={"auto_reconnect": False})
        await client.connect(await squall_broker.ready())
        await client.publish("t", b"x", qos=1)
        await client.disconnect()
    squall_world.run(main, until=30)
    print("HASH", squall_world.trace.hash)
"""
    )
    hashes = set()
    for _ in range(2):
        result = pytester.runpytest("-s", "--squall-seeds", "11")
        result.assert_outcomes(passed=1)
        hashes.update(re.findall(r"HASH (\w+)", result.stdout.str()))
    assert len(hashes) == 1


def test_flavors_by_parametrize_and_no_broker_by_marker(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        test_svc="""
import pytest

@pytest.mark.parametrize("squall_flavor", ["squall", "amqtt"])
def test_both(squall_world, squall_broker, squall_flavor):
    async def main():
        await squall_broker.ready()
        return squall_broker.broker.flavor
    assert squall_world.run(main, until=30).value == squall_flavor

@pytest.mark.parametrize("squall_seed", [5, 6])
def test_own_seeds(squall_world, squall_seed):
    assert squall_world.seed == squall_seed

@pytest.mark.squall_broker(None)
def test_bare_world(squall_world):
    assert "broker" not in squall_world.hosts

@pytest.mark.squall_broker(None)
def test_asks_for_a_broker_it_turned_off(squall_broker):
    pass

@pytest.mark.squall_broker("mosquito")
def test_misspelt_flavor(squall_world):
    pass
"""
    )
    result = pytester.runpytest("-v")
    result.assert_outcomes(passed=5, errors=2)
    result.stdout.fnmatch_lines(
        ["*test_own_seeds[[]5[]] PASSED*", "*test_own_seeds[[]6[]] PASSED*"]
    )
    result.stdout.fnmatch_lines(
        [
            "*test_both[[]seed=1-squall[]] PASSED*",
            "*test_both[[]seed=1-amqtt[]] PASSED*",
        ]
    )
    assert "asked for no broker" in result.stdout.str()
    assert (
        "broker flavor must be one of squall, amqtt or None for no broker (got 'mosquito')"
        in result.stdout.str()
    )


def test_task_errors_in_the_world_show_in_the_failure_report(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        test_svc="""
import asyncio

def test_service_crashes(squall_world):
    async def service():
        await asyncio.sleep(2)
        raise RuntimeError("valve controller lost its mind")

    squall_world.host("valve").spawn(service)
    squall_world.run(until=5)
    assert not squall_world.errors
"""
    )
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*task error: t=2.0* task valve:service on valve: RuntimeError: valve controller lost its mind"
        ]
    )
