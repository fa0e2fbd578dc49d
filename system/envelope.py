"""The envelope carried by every message on the bus, and its JSON codec.

Wire format: one UTF-8 JSON object; fields that are ``None`` are left out::

    {"id": "3f0c...", "seq": 7, "ts": 1767225600.25, "source": "sensor-1",
     "kind": "telemetry", "data": {"temp": 21.5}}

``decode`` never raises anything but ``EnvelopeError`` (a ``ValueError``), so a receiver
can count a bad payload and carry on.
"""

from __future__ import annotations

import itertools
import json
import time
import uuid
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import PydanticSerializationError

__all__ = ["DEFAULT_MAX_SIZE", "Envelope", "EnvelopeError", "EnvelopeFactory", "decode", "encode"]

DEFAULT_MAX_SIZE = 256 * 1024
"""Largest encoded envelope, in bytes, that ``encode``/``decode`` accept by default."""

M = TypeVar("M", bound=BaseModel)


class EnvelopeError(ValueError):
    """A payload is not a valid envelope: not JSON, wrong shape or too large."""


class Envelope(BaseModel):
    """One message. ``data`` is any JSON value, or a pydantic model (sent as its JSON form)."""

    # NaN/inf stay floats when dumped, so the strict json.dumps in ``encode`` rejects them
    # instead of pydantic quietly turning them into null.
    model_config = ConfigDict(frozen=True, extra="forbid", ser_json_inf_nan="constants")

    id: str = Field(default_factory=lambda: uuid.uuid4().hex, min_length=1)
    seq: int = Field(ge=0)
    # Looked up on each call, so a world that patches time.time (the simulator) is obeyed.
    ts: float = Field(default_factory=lambda: time.time(), allow_inf_nan=False)
    source: str = Field(min_length=1)
    kind: str = Field(min_length=1)
    correlation_id: str | None = None
    data: Any = None

    def data_as(self, model: type[M]) -> M:
        """``data`` validated as ``model``; raises ``EnvelopeError`` when it does not fit."""
        if isinstance(self.data, model):
            return self.data
        try:
            return model.model_validate(self.data)
        except ValidationError as exc:
            raise EnvelopeError(
                f"envelope {self.id} data is not a valid {model.__name__}: {_first_error(exc)}"
            ) from None


class EnvelopeFactory:
    """Makes envelopes for one source with a strictly increasing ``seq`` (starting at ``start``)."""

    def __init__(self, source: str, *, start: int = 0) -> None:
        if not source:
            raise ValueError("EnvelopeFactory needs a non-empty source name")
        self.source = source
        self._seq = itertools.count(start)

    def make(self, kind: str, data: Any = None, *, correlation_id: str | None = None) -> Envelope:
        return Envelope(seq=next(self._seq), source=self.source, kind=kind, correlation_id=correlation_id, data=data)


def encode(envelope: Envelope, *, max_size: int = DEFAULT_MAX_SIZE) -> bytes:
    """The envelope as compact JSON bytes; ``EnvelopeError`` if ``data`` is not JSON or it is too large."""
    try:
        obj = envelope.model_dump(mode="json", exclude_none=True)
        text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError, PydanticSerializationError) as exc:
        raise EnvelopeError(
            f"envelope {envelope.id} data is not JSON-serialisable ({exc}); send plain JSON values or a pydantic model"
        ) from None
    raw = text.encode()
    if len(raw) > max_size:
        raise EnvelopeError(
            f"envelope {envelope.id} is {len(raw)} bytes, over the {max_size}-byte limit; "
            "send less data or raise max_size"
        )
    return raw


def decode(payload: bytes | bytearray | str, *, max_size: int = DEFAULT_MAX_SIZE) -> Envelope:
    """Parse and validate one envelope; any problem raises ``EnvelopeError`` with a one-line reason."""
    if len(payload) > max_size:
        raise EnvelopeError(f"payload is {len(payload)} bytes, over the {max_size}-byte limit")
    try:
        obj = json.loads(payload, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise EnvelopeError(f"payload is not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise EnvelopeError(f"payload is JSON {type(obj).__name__}, expected an envelope object")
    try:
        return Envelope.model_validate(obj, strict=True)
    except ValidationError as exc:
        raise EnvelopeError(f"payload is not an envelope: {_first_error(exc)}") from None


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON")


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "<root>"
    more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{where}: {err['msg']}{more}"
