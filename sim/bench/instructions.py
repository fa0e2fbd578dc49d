"""Instructions per burst message, sim and real: the figure a noisy machine cannot move.

Wall-clock figures on a shared VM drift by a third within seconds; valgrind's instruction
count of the same run is the same every time. Each world runs the amqtt burst at two sizes
under ``valgrind --tool=cachegrind``; the difference, divided by the extra messages, is the
cost of one message with imports and start-up cancelled out.

Only user-space instructions count, so real loopback's syscalls (about 5% of its time here)
are left out: ``real_over_sim_instructions`` understates the sim's advantage a little.
Use it to compare two versions of the kernel, not to promise a wall-clock speed-up.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

from sim.errors import BadInput

PUBLISHERS = 10
_REFS = re.compile(r"I\s+refs:\s+([\d,]+)")


def instructions(world: str, messages: int) -> int:
    """User-space instructions of one process that runs the burst once (imports included)."""
    done = subprocess.run(
        ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null",
         sys.executable, "-m", "sim.bench.instructions", world, str(messages)],
        capture_output=True,
        text=True,
        check=False,
        env=_plain_env(),
    )
    found = _REFS.search(done.stderr)
    if done.returncode != 0 or found is None:
        last = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "no output"
        raise RuntimeError(f"the burst under valgrind failed ({last})")
    return int(found.group(1).replace(",", ""))


def _plain_env() -> dict[str, str]:
    # The same dict orders, so the same count; and no coverage measuring the counted process
    # (the test suite runs under `coverage run`, which would otherwise follow it in).
    env = {k: v for k, v in os.environ.items() if not k.startswith("COVERAGE_")}
    env["PYTHONHASHSEED"] = "0"
    return env


def figure(quick: bool) -> dict[str, float]:
    if shutil.which("valgrind") is None:
        raise BadInput("the instructions figure needs valgrind: install it (Debian package valgrind) or leave the figure out with --only")
    small, large = (3, 13) if quick else (30, 130)
    runs = [(world, n) for world in ("sim", "real") for n in (small, large)]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:  # counts do not care
        counts = dict(zip(runs, pool.map(lambda run: instructions(*run), runs), strict=True))
    per_message = {w: (counts[w, large] - counts[w, small]) / (PUBLISHERS * (large - small)) for w in ("sim", "real")}
    return {
        "sim_instructions_per_msg": round(per_message["sim"]),
        "real_instructions_per_msg": round(per_message["real"]),
        "real_over_sim_instructions": round(per_message["real"] / per_message["sim"], 3),
    }


def _main(world: str, messages: int) -> None:
    import logging

    from sim.bench.amqtt_burst import run_real, run_sim

    logging.getLogger("amqtt").setLevel(logging.CRITICAL)
    if world == "sim":
        run_sim(PUBLISHERS, messages, 64)
    else:
        run_real(PUBLISHERS, messages, 64)


if __name__ == "__main__":
    _main(sys.argv[1], int(sys.argv[2]))
