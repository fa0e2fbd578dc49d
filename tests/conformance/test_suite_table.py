"""The suite's own bookkeeping: statement names are unique and every listed deviation exists."""

from system.broker.conformance import STATEMENTS
from tests.conformance._suite import AMQTT_VIOLATIONS, MOSQUITTO_DEVIATIONS


def test_statement_test_names_are_unique() -> None:
    names = [st.name for st in STATEMENTS]
    assert len(set(names)) == len(names)


def test_every_listed_deviation_names_a_statement() -> None:
    names = {st.name for st in STATEMENTS}
    assert set(AMQTT_VIOLATIONS) <= names
    assert set(MOSQUITTO_DEVIATIONS) <= names


def test_every_statement_has_an_area() -> None:
    assert all(st.area for st in STATEMENTS)
