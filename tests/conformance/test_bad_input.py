"""MQTT 3.1.1 conformance, area: bad input. Targets and known deviations: tests/conformance/_suite.py."""

from tests.conformance._suite import make_tests

globals().update(make_tests("bad-input"))
