"""Shared fixtures. Helpers for one area live in that area's own conftest or module."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


def mosquitto_binary() -> str | None:
    return shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if Path(p).exists()), None
    )


@pytest.fixture(scope="session")
def mosquitto_path() -> str:
    path = mosquitto_binary()
    if path is None:
        pytest.skip("mosquitto binary not found: apt-get install mosquitto (.ci/run installs it)")
    return path
