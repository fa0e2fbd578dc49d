"""The toxic vocabulary shared by the simulated network and the chaos proxy.

Names, attributes and units are Toxiproxy 2.x's, so a scenario's fault means the same
thing in both worlds and the JSON a Toxiproxy client sends validates here unchanged.
Everything in this module is pure: the arithmetic each toxic does on a chunk of bytes
(how long to hold it, how to cut it) takes its randomness as an argument, so the simulated
network can feed it the run's seeded stream and the proxy a real one.

Validation is Toxiproxy 2.12's, measured on the real server: attributes are JSON integers
(``100.0``, ``1e2``, ``"100"`` and ``true`` are refused, as Go refuses them for an int64),
any sign is accepted, and so is any toxicity. What an odd value does follows Toxiproxy too:
a negative delay is no delay, a toxicity above 1 always applies and one at or below 0 never,
a bandwidth ``rate`` of 0 or less lets nothing through, a ``timeout`` of 0 or less never fires.
"""

from __future__ import annotations

import random
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Stream = Literal["upstream", "downstream"]
TOXIC_TYPES = ("latency", "bandwidth", "slow_close", "timeout", "reset_peer", "slicer", "limit_data", "noop")


# A Go int64 decoded from JSON: an integer literal, nothing else, any sign.
Int64 = Annotated[int, Field(strict=True, ge=-(2**63), le=2**63 - 1)]


class _Attrs(BaseModel):
    # Toxiproxy ignores attributes it does not know; so do we (clients send extras).
    model_config = ConfigDict(extra="ignore")


class LatencyAttrs(_Attrs):
    latency: Int64 = Field(0, description="ms added to each chunk")
    jitter: Int64 = Field(0, description="ms, uniform +-jitter around latency")

    def delay(self, rng: random.Random) -> float:
        """Seconds to hold one chunk (never negative)."""
        ms = self.latency
        if self.jitter > 0:
            ms += rng.randint(-self.jitter, self.jitter)
        return max(ms, 0) / 1000.0


class BandwidthAttrs(_Attrs):
    rate: Int64 = Field(0, description="KB/s, 1 KB = 1000 bytes; 0 or less = nothing passes")

    @property
    def stopped(self) -> bool:
        """Toxiproxy holds every byte at rate 0 or less, until the toxic changes or goes."""
        return self.rate <= 0

    def seconds_for(self, nbytes: int) -> float:
        """Seconds a chunk of nbytes occupies the link at this rate (infinite when stopped)."""
        if self.rate <= 0:
            return float("inf")
        return nbytes / (self.rate * 1000.0)


class SlowCloseAttrs(_Attrs):
    delay: Int64 = Field(0, description="ms the close is held back")


class TimeoutAttrs(_Attrs):
    timeout: Int64 = Field(0, description="ms of silence until the connection is closed; 0 = never")


class ResetPeerAttrs(_Attrs):
    timeout: Int64 = Field(0, description="ms after the first data until both ends see a reset")


class SlicerAttrs(_Attrs):
    average_size: Int64 = Field(0, description="bytes per slice on average")
    size_variation: Int64 = Field(0, description="bytes, uniform +-variation")
    delay: Int64 = Field(0, description="microseconds between slices")

    def slices(self, data: bytes, rng: random.Random) -> list[bytes]:
        """Cut data into slices whose concatenation is data, as Toxiproxy does.

        Toxiproxy halves a chunk, moving the cut by up to ``size_variation`` either way, and
        halves each half again until a piece is within ``size_variation`` of ``average_size``
        or smaller: 10 kB at 100 +- 20 gives 128 pieces of ~78 bytes, not 100 of 100.
        An ``average_size`` of 0 or less passes the chunk whole (Toxiproxy recurses forever).
        """
        if self.average_size <= 0 or len(data) <= 1:
            return [data]
        return [data[a:b] for a, b in self.cuts(len(data), rng)]

    def cuts(self, size: int, rng: random.Random) -> list[tuple[int, int]]:
        """The (start, end) of each slice of ``size`` bytes, in order."""
        out: list[tuple[int, int]] = []
        todo = [(0, size)]  # a stack, right half below left, so pieces come out in order
        while todo:
            start, end = todo.pop()
            if end - start - self.average_size <= self.size_variation or end - start < 2:
                out.append((start, end))
                continue
            mid = start + (end - start) // 2
            if self.size_variation > 0:
                mid += rng.randrange(2 * self.size_variation) - self.size_variation
            mid = min(max(mid, start + 1), end - 1)  # Toxiproxy would slice out of bounds and panic
            todo.append((mid, end))
            todo.append((start, mid))
        return out


class LimitDataAttrs(_Attrs):
    bytes: Int64 = Field(0, description="bytes forwarded before the connection is closed")


class NoopAttrs(_Attrs):
    pass


_ATTRS: dict[str, type[_Attrs]] = {
    "latency": LatencyAttrs,
    "bandwidth": BandwidthAttrs,
    "slow_close": SlowCloseAttrs,
    "timeout": TimeoutAttrs,
    "reset_peer": ResetPeerAttrs,
    "slicer": SlicerAttrs,
    "limit_data": LimitDataAttrs,
    "noop": NoopAttrs,
}


class Toxic(BaseModel):
    """One toxic, in Toxiproxy's JSON shape.

    ``Toxic.model_validate({"type": "latency", "attributes": {"latency": 100}})`` gives a
    toxic named ``latency_downstream`` applying to every downstream connection.
    """

    model_config = ConfigDict(extra="ignore")

    name: str = ""
    type: Literal["latency", "bandwidth", "slow_close", "timeout", "reset_peer", "slicer", "limit_data", "noop"]
    stream: str = Field("downstream", description="upstream or downstream, in any case; kept as written, as Toxiproxy does")
    toxicity: float = Field(1.0, allow_inf_nan=False, description="share of connections it acts on; >= 1 all, <= 0 none")
    attributes: Any = None

    @model_validator(mode="before")
    @classmethod
    def _normalise(cls, data: Any) -> Any:
        if isinstance(data, dict):
            data = dict(data)
            if data.get("stream") in (None, ""):
                data["stream"] = "downstream"
            if data.get("toxicity") is None:
                data["toxicity"] = 1.0
        return data

    @field_validator("stream")
    @classmethod
    def _known_stream(cls, value: str) -> str:
        if value.lower() not in ("upstream", "downstream"):
            raise ValueError("stream was invalid, can be either upstream or downstream")
        return value

    @property
    def direction(self) -> Stream:
        """The direction it acts on: ``stream`` without its case ("UPSTREAM" acts upstream)."""
        return "upstream" if self.stream.lower() == "upstream" else "downstream"

    @model_validator(mode="after")
    def _typed_attributes(self) -> "Toxic":
        attrs_cls = _ATTRS[self.type]
        raw = self.attributes
        if isinstance(raw, BaseModel):
            raw = raw.model_dump()
        self.attributes = attrs_cls.model_validate(raw or {})
        if not self.name:
            self.name = f"{self.type}_{self.stream}"
        return self

    def updated(self, patch: dict[str, Any]) -> "Toxic":
        """A copy with the fields in ``patch`` replaced; attributes merge key by key."""
        merged = self.to_json()
        for key, value in patch.items():
            if key == "attributes" and isinstance(value, dict):
                merged["attributes"] = {**merged["attributes"], **value}
            elif value is not None:
                merged[key] = value
        return Toxic.model_validate(merged)

    def applies(self, rng: random.Random) -> bool:
        """Draw whether this toxic acts on one connection and direction (its toxicity)."""
        return self.toxicity >= 1.0 or rng.random() < self.toxicity

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "stream": self.stream,
            "toxicity": self.toxicity,
            "attributes": self.attributes.model_dump(),
        }



__all__ = [
    "TOXIC_TYPES",
    "BandwidthAttrs",
    "LatencyAttrs",
    "LimitDataAttrs",
    "NoopAttrs",
    "ResetPeerAttrs",
    "SlicerAttrs",
    "SlowCloseAttrs",
    "Stream",
    "TimeoutAttrs",
    "Toxic",
]
