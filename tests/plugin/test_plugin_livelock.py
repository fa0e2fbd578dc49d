"""A livelocked or hanging seed in the plugin: the error names the host and the line, the
world is released after the test, and a test gets a default wall-clock limit."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

LIVELOCK = """
import asyncio, gc, weakref
import pytest
from sim.errors import Livelock

HOSTS = []

@pytest.mark.squall_seeds(2)
def test_spins(squall_world, squall_seed):
    async def spin():
        while True:
            await asyncio.sleep(0)  # never lets virtual time move

    squall_world.host("svc").spawn(spin)
    HOSTS.append(weakref.ref(squall_world.host("svc")))
    squall_world.loop.livelock_limit = 20_000
    squall_world.run(until=5)

def test_the_failed_worlds_are_gone():
    gc.collect()
    assert len(HOSTS) == 2 and [r() for r in HOSTS] == [None, None]
"""


def test_a_livelock_names_the_host_and_line_and_the_failed_world_is_released(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_spin=LIVELOCK)
    result = pytester.runpytest("-p", "no:randomly")
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(["*Livelock: livelock at virtual time 0.000000s*", "*task svc:spin on host 'svc' (*spin) at *test_spin.py:11 in spin*"])


HANG = """
import time

def test_hangs_in_wall_clock(squall_world):
    time.sleep(60)  # outside the world's clock: only a wall-clock limit stops it
"""


def test_plugin_tests_get_a_default_wall_clock_limit_from_the_ini(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_hang=HANG)
    pytester.makeini("[pytest]\nsquall_timeout = 1\n")
    result = pytester.runpytest_subprocess("-p", "no:randomly", "-o", "addopts=")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*Timeout*"])
