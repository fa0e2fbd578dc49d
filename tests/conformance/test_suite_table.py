"""The suite's own bookkeeping: statement names are unique, every listed deviation exists, and
the published tables (README.md, system/broker/conformance/README.md) say what the suite computes."""

import re
from pathlib import Path

import pytest

from system.broker.conformance import STATEMENTS
from tests.conformance._suite import AMQTT_VIOLATIONS, MOSQUITTO_DEVIATIONS, expected_counts

ROOT = Path(__file__).resolve().parents[2]
# README.md's summary table: | target | P of N | F | S | ...
_ROW = re.compile(r"^\| (?P<target>[^|]+?) \| (?P<p>\d+) of (?P<n>\d+) \| (?P<f>\d+) \| (?P<s>\d+) \|", re.M)
# first cell -> the target whose enforced verdicts the row must add up to; a run against another
# process gives the in-process verdicts (its checks judge their own topics and clean up after)
_PINNED = {
    "squall (in-process)": "squall", "squall (another process)": "squall", "mosquitto 2.0.11": "mosquitto",
    "stock amqtt (in-process)": "amqtt", "stock amqtt (another process)": "amqtt",
}


def test_statement_test_names_are_unique() -> None:
    names = [st.name for st in STATEMENTS]
    assert len(set(names)) == len(names)


def test_every_listed_deviation_names_a_statement() -> None:
    names = {st.name for st in STATEMENTS}
    assert set(AMQTT_VIOLATIONS) <= names
    assert set(MOSQUITTO_DEVIATIONS) <= names


def test_every_statement_has_an_area() -> None:
    assert all(st.area for st in STATEMENTS)


@pytest.mark.parametrize("readme", ["README.md", "system/broker/conformance/README.md"])
def test_readme_counts_are_the_suites(readme: str) -> None:
    rows = {m["target"]: m for m in _ROW.finditer((ROOT / readme).read_text())}
    assert set(_PINNED) <= set(rows), f"{readme}: summary rows {sorted(rows)}"
    n = len(STATEMENTS)
    for row in rows.values():
        assert int(row["n"]) == n, f"{readme}: {row['target']!r} counts of {row['n']}, the suite has {n}"
        assert int(row["p"]) + int(row["f"]) + int(row["s"]) == n, f"{readme}: {row['target']!r} does not add up"
    for label, target in _PINNED.items():
        row = rows[label]
        got = (int(row["p"]), int(row["f"]), int(row["s"]))
        assert got == expected_counts()[target], f"{readme}: {label!r} says {got}, the suite computes {expected_counts()[target]}"


def test_statement_table_is_the_suites() -> None:
    """system/broker/conformance/README.md lists every statement, in order, with the verdicts the tests enforce."""
    text = (ROOT / "system/broker/conformance/README.md").read_text()
    rows = re.findall(r"^\| `(MQTT_\w+)` \| (\w+) \| (\w+) \| (\w+) \|", text, re.M)
    assert [r[0] for r in rows] == [st.name for st in STATEMENTS]
    for name, squall, mosquitto, amqtt in rows:
        assert squall == "pass", name
        assert mosquitto == ("fail" if name in MOSQUITTO_DEVIATIONS else "pass"), name
        assert amqtt == ("fail" if name in AMQTT_VIOLATIONS else "pass"), name
