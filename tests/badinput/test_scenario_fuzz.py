"""Scenario parsing under hypothesis: whatever the document, the only error is BadInput, on one line.

Three sources of documents: arbitrary TOML built from the scenario's own field names and any
values (inf, nan, huge, nested), structural mutations of the shipped scenarios (a value
replaced, a key dropped, a key added), and byte-level damage of the shipped files. A document
that parses must also draw its fault schedule in bounded time and survive the round trip
`squall sim shrink` relies on (to_toml, then parse again).
"""

from __future__ import annotations

import math
import tempfile
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from sim.checks import CheckConfig
from sim.errors import BadInput
from sim.faults.schedule import SwarmMix, TimedFault
from sim.scenario import (
    MAX_SWARM_FAULTS,
    BrokerParams,
    ChaosParams,
    NetworkParams,
    Scenario,
    Workload,
    load_scenario,
    parse_scenario,
    shipped,
    to_toml,
)
from system.fleet import FleetConfig

FIELDS = sorted({name for model in (Scenario, NetworkParams, BrokerParams, ChaosParams, Workload, SwarmMix, CheckConfig, FleetConfig, TimedFault) for name in model.model_fields} | {"kind", "host", "type", "target", "a", "b", "offset", "drift", "attributes"})
SHIPPED = {name: (resources.files("sim") / "scenarios" / f"{name}.toml").read_text() for name in shipped()}

keys = st.one_of(st.sampled_from(FIELDS), st.text(min_size=1, max_size=6))
numbers = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, 1, -1, 1e-9, 1e12, 1e308, 86_400, 10**18]),
)
scalars = st.one_of(numbers, st.booleans(), st.text(max_size=12), st.sampled_from(["crash", "toxic", "partition", "latency", "broker", "broker:1883"]))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=4)), max_leaves=16)
documents = st.dictionaries(keys, values, max_size=8)

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)


def _dumps(doc: dict[str, Any]) -> str:
    try:
        return tomli_w.dumps(doc)
    except (TypeError, ValueError):  # tomli_w cannot write every structure (e.g. a table in a mixed array)
        assume(False)
        raise


def _holds_the_contract(text: str, origin: str = "fuzz.toml") -> Scenario | None:
    try:
        scenario = parse_scenario(text, origin)
    except BadInput as exc:
        message = str(exc)
        assert "\n" not in message and message.startswith(f"scenario {origin}: "), message
        assert "Traceback" not in message and len(message) < 3000
        return None
    # It parsed: then it is a run that ends, and it writes back as a scenario that parses again.
    assert all(math.isfinite(x) for x in _floats(scenario.model_dump())), scenario
    assert 0 < scenario.duration <= 1_000_000
    fleet = scenario.fleet_config()
    assert fleet.rooms * fleet.sensors_per_room * scenario.duration / fleet.telemetry_interval <= 10_000_000
    schedule = scenario.schedule(scenario.seed)
    assert len(schedule) <= len(scenario.faults) + MAX_SWARM_FAULTS
    again = parse_scenario(to_toml(scenario.resolved(scenario.seed)), "written.toml")
    assert again.faults == scenario.resolved(scenario.seed).faults
    return scenario


def _floats(value: Any) -> list[float]:
    if isinstance(value, float):
        return [value]
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (list, tuple)):
        return [x for v in value for x in _floats(v)]
    return []


@pytest.mark.timeout(120)
@SETTINGS
@given(documents, st.sampled_from([{}, {"name": "x"}, {"name": "x", "duration": 10}]))
def test_any_toml_document_is_a_scenario_or_one_line_of_bad_input(doc, base):
    _holds_the_contract(_dumps({**base, **doc}))


def _paths(doc: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix] if prefix else []
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _paths(v, prefix + (i,))
    return out


@st.composite
def mutated_shipped(draw) -> str:
    doc = tomllib.loads(SHIPPED[draw(st.sampled_from(sorted(SHIPPED)))])
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_paths(doc)))
        parent = doc
        for step in path[:-1]:
            parent = parent[step]
        action = draw(st.sampled_from(["replace", "drop", "add"]))
        if action == "replace":
            parent[path[-1]] = draw(values)
        elif action == "drop" and isinstance(parent, dict):
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(keys)] = draw(values)
    return _dumps(doc)


@pytest.mark.timeout(120)
@SETTINGS
@given(mutated_shipped())
def test_mutations_of_the_shipped_scenarios_never_raise_anything_but_bad_input(text):
    _holds_the_contract(text)


SCRATCH = Path(tempfile.mkdtemp(prefix="squall-fuzz-"))


@pytest.mark.timeout(120)
@SETTINGS
@given(st.sampled_from(sorted(SHIPPED)), st.integers(0, 2000), st.integers(0, 8), st.binary(max_size=8))
def test_damaged_bytes_of_a_shipped_file_never_raise_anything_but_bad_input(name, at, cut, inserted):
    data = SHIPPED[name].encode()
    at = min(at, len(data))
    path = SCRATCH / "damaged.toml"
    path.write_bytes(data[:at] + inserted + data[at + cut :])
    try:
        load_scenario(path)
    except BadInput as exc:
        assert "\n" not in str(exc) and str(path) in str(exc)


def test_the_fuzzer_reaches_the_interesting_fields():
    assert {"duration", "telemetry_interval", "per_minute", "toxic_types", "kind", "at", "drift"} <= set(FIELDS)


@pytest.mark.parametrize("duration", [1.0, 4.99, 5.0])
def test_a_run_shorter_than_the_swarms_start_still_writes_a_scenario_that_parses(duration):
    # Found by the mutation test above: faults drawn at 5 s in a 1 s run made the run's own
    # scenario.toml (what replay and shrink read) bad input.
    scenario = load_scenario("swarm").with_duration(duration)
    again = parse_scenario(to_toml(scenario.resolved(3)), "scenario.toml")  # bad input would fail the test
    assert again.duration == duration and all(f.at < duration for f in again.faults)
