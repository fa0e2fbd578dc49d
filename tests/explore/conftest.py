"""Real run and sweep directories for the explore tests (made once per session, per xdist worker)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sim.runner import run_scenario
from sim.scenario import load_scenario, parse_scenario

# Stock amqtt forgets persistent sessions when it restarts: the recorder's queued QoS 1 messages are lost.
STOCK_AMQTT_RESTART = """
name = "stock-amqtt-restart"
duration = 50
[broker]
flavor = "amqtt"
[fleet]
rooms = 1
sensors_per_room = 2
telemetry_interval = 1.0
qos = 1
[[faults]]
at = 15
duration = 5
kind = "crash"
host = "broker"
[checks]
topics = "fleet/+/+/telemetry/#"
convergence_s = 20
"""


@pytest.fixture(scope="session")
def partition_run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """partition-heal, shortened to 150 s: both partitions happen, every check passes."""
    out = tmp_path_factory.mktemp("partition") / "run"
    scenario = load_scenario("partition-heal").model_copy(update={"duration": 150.0})
    run_scenario(scenario, 1, out=out, scenario_ref="partition-heal", plots=False)
    return out


@pytest.fixture(scope="session")
def failing_run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("failing") / "run"
    run_scenario(parse_scenario(STOCK_AMQTT_RESTART, "test"), 1, out=out, plots=False)
    return out


@pytest.fixture(scope="session")
def stock_amqtt_scenario_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("scenario") / "stock-amqtt-restart.toml"
    path.write_text(STOCK_AMQTT_RESTART)
    return path
