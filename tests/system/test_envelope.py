"""The envelope codec: round-trips, leaves out None, rejects bad payloads with EnvelopeError."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

from system import Envelope, EnvelopeError, EnvelopeFactory, decode, encode

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
envelopes = st.builds(
    Envelope,
    id=st.uuids().map(lambda u: u.hex),
    seq=st.integers(min_value=0, max_value=2**53),
    ts=st.floats(min_value=0, max_value=4e9),
    source=st.text(min_size=1, max_size=20),
    kind=st.text(min_size=1, max_size=20),
    correlation_id=st.none() | st.text(min_size=1, max_size=32),
    data=json_values,
)


@given(envelopes)
def test_encode_decode_round_trips(env: Envelope) -> None:
    assert decode(encode(env)) == env


@given(envelopes)
def test_none_fields_are_left_out(env: Envelope) -> None:
    obj = json.loads(encode(env))
    assert all(v is not None for v in obj.values())
    assert ("correlation_id" in obj) == (env.correlation_id is not None)


@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_raise_anything_but_envelope_error(payload: bytes) -> None:
    with contextlib.suppress(EnvelopeError):
        decode(payload)


@given(json_values.filter(lambda v: not (isinstance(v, dict) and {"seq", "source", "kind"} <= v.keys())))
def test_json_that_is_not_an_envelope_is_rejected(value: object) -> None:
    with pytest.raises(EnvelopeError):
        decode(json.dumps(value).encode())


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"not json", "not JSON"),
        (b"[1, 2]", "expected an envelope object"),
        (b'{"seq": 1, "source": "s", "kind": "k", "data": NaN}', "NaN"),
        (b'{"seq": "1", "source": "s", "kind": "k"}', "seq"),
        (b'{"seq": 1, "kind": "k"}', "source"),
        (b'{"seq": 1, "source": "s", "kind": "k", "extra": 1}', "extra"),
        (b'{"seq": -1, "source": "s", "kind": "k"}', "seq"),
    ],
)
def test_bad_payloads_say_what_is_wrong(payload: bytes, reason: str) -> None:
    with pytest.raises(EnvelopeError, match=reason):
        decode(payload)


def test_oversized_payloads_are_rejected_both_ways() -> None:
    env = EnvelopeFactory("s").make("k", "x" * 2000)
    with pytest.raises(EnvelopeError, match="over the 1000-byte limit"):
        encode(env, max_size=1000)
    with pytest.raises(EnvelopeError, match="over the 1000-byte limit"):
        decode(encode(env), max_size=1000)


def test_data_that_is_not_json_is_refused_at_encode() -> None:
    factory = EnvelopeFactory("s")
    for bad in (float("nan"), {"x": [float("inf")]}, object()):
        with pytest.raises(EnvelopeError, match="not JSON-serialisable"):
            encode(factory.make("k", bad))


class Reading(BaseModel):
    sensor: str
    value: float


def test_pydantic_data_is_sent_as_json_and_read_back_typed() -> None:
    env = EnvelopeFactory("s").make("telemetry", Reading(sensor="t1", value=21.5))
    received = decode(encode(env))
    assert received.data == {"sensor": "t1", "value": 21.5}
    assert received.data_as(Reading) == Reading(sensor="t1", value=21.5)
    with pytest.raises(EnvelopeError, match="not a valid Reading"):
        EnvelopeFactory("s").make("k", {"sensor": "t1"}).data_as(Reading)


def test_factory_numbers_each_source_monotonically_with_unique_ids() -> None:
    a, b = EnvelopeFactory("a"), EnvelopeFactory("b")
    made = [a.make("k"), b.make("k"), a.make("k"), a.make("k")]
    assert [e.seq for e in made if e.source == "a"] == [0, 1, 2]
    assert len({e.id for e in made}) == len(made)
