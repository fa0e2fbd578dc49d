"""The real `squall` command in a subprocess, as a user's shell runs it: `squall` and `start_squall` fixtures."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

import pytest

ROOT = Path(__file__).resolve().parents[2]


def env(**extra: str) -> dict[str, str]:
    e = dict(os.environ)
    # The worktree's squall, in this process's subprocesses and in theirs.
    e["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), e.get("PYTHONPATH", "")) if p)
    e.pop("SQUALL_DEBUG", None)
    e.update(extra)
    return e


def _run(*args: str, cwd: Path, timeout: float = 240, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sim.cli", *args], cwd=cwd, env=env(**extra), capture_output=True, text=True, timeout=timeout)


class Running:
    """A squall command in a process group of its own (as a terminal's job), its stderr collected as it comes."""

    def __init__(self, *args: str, cwd: Path, **extra: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sim.cli", *args], cwd=cwd, env=env(**extra), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, start_new_session=True,
        )
        self.out = self.err = ""
        self._readers = [threading.Thread(target=self._read, args=(name,), daemon=True) for name in ("out", "err")]
        for t in self._readers:
            t.start()

    def _read(self, name: str) -> None:
        pipe = self.proc.stdout if name == "out" else self.proc.stderr
        assert pipe is not None
        while chunk := pipe.read(1):
            setattr(self, name, getattr(self, name) + chunk)

    def wait_until(self, ready: Callable[[], bool], what: str, timeout: float = 180) -> None:
        """Poll for a sign that the command really works (not a sleep); fail if it exits or never shows it."""
        deadline = time.monotonic() + timeout
        while not ready():
            assert self.proc.poll() is None, f"squall exited ({self.proc.returncode}) before {what}: {self.err[-2000:]}"
            assert time.monotonic() < deadline, f"no sign of {what} within {timeout}s: {self.err[-2000:]}"
            time.sleep(0.05)

    def ctrl_c(self, timeout: float = 120, sig: signal.Signals = signal.SIGINT) -> tuple[int, str, str]:
        """``sig`` to the whole process group (SIGINT: as Ctrl-C in a terminal); the exit code, stdout and stderr."""
        os.killpg(self.proc.pid, sig)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, 9)
            self.proc.wait()
            raise AssertionError(f"squall still running {timeout}s after Ctrl-C: {self.err[-2000:]}") from None
        for t in self._readers:
            t.join(10)
        return self.proc.returncode, self.out, self.err

    def group_gone(self, timeout: float = 60) -> bool:
        """True once no process of the group is left (workers, forkserver, proxy)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.killpg(self.proc.pid, 0)
            except ProcessLookupError:
                return True
            time.sleep(0.1)
        return False

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, 9)
            self.proc.wait()


@pytest.fixture
def squall(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """``squall("sim", "list")``: run to the end in tmp_path; returns the completed process."""
    return lambda *args, **extra: _run(*args, cwd=tmp_path, **extra)


@pytest.fixture
def start_squall(tmp_path: Path) -> Iterator[Callable[..., Running]]:
    """``start_squall("sim", "sweep", ...)``: a running command; killed at teardown if still alive."""
    started: list[Running] = []

    def start(*args: str, **extra: str) -> Running:
        started.append(Running(*args, cwd=tmp_path, **extra))
        return started[-1]

    yield start
    for r in started:
        r.kill()
