"""Fixtures for the bus suite: the same tests run against squall's embedded broker and mosquitto."""

from __future__ import annotations

from pathlib import Path

import pytest
from _bus_support import AmqttTarget, MosquittoTarget, Target


@pytest.fixture(params=["amqtt", "mosquitto"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Target:
    if request.param == "amqtt":
        return AmqttTarget()
    t = MosquittoTarget(request.getfixturevalue("mosquitto_path"), tmp_path)
    request.addfinalizer(t.kill)
    return t


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and callspec.params.get("target") == "mosquitto":
            item.add_marker(pytest.mark.mosquitto)
