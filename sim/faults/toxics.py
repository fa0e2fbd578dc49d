"""The toxic vocabulary shared by the simulated network and the chaos proxy.

Names, attributes and units are Toxiproxy 2.x's, so a scenario's fault means the same
thing in both worlds and the JSON a Toxiproxy client sends validates here unchanged.
Everything in this module is pure: the arithmetic each toxic does on a chunk of bytes
(how long to hold it, how to cut it) takes its randomness as an argument, so the simulated
network can feed it the run's seeded stream and the proxy a real one.
"""

from __future__ import annotations

import random
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Stream = Literal["upstream", "downstream"]
TOXIC_TYPES = ("latency", "bandwidth", "slow_close", "timeout", "reset_peer", "slicer", "limit_data", "noop")


class _Attrs(BaseModel):
    # Toxiproxy ignores attributes it does not know; so do we (clients send extras).
    model_config = ConfigDict(extra="ignore")


class LatencyAttrs(_Attrs):
    latency: int = Field(0, ge=0, description="ms added to each chunk")
    jitter: int = Field(0, ge=0, description="ms, uniform +-jitter around latency")

    def delay(self, rng: random.Random) -> float:
        """Seconds to hold one chunk (never negative)."""
        ms = self.latency
        if self.jitter:
            ms += rng.randint(-self.jitter, self.jitter)
        return max(ms, 0) / 1000.0


class BandwidthAttrs(_Attrs):
    rate: int = Field(0, ge=0, description="KB/s, 1 KB = 1000 bytes; 0 = unlimited")

    def seconds_for(self, nbytes: int) -> float:
        """Seconds a chunk of nbytes occupies the link at this rate."""
        if self.rate <= 0:
            return 0.0
        return nbytes / (self.rate * 1000.0)


class SlowCloseAttrs(_Attrs):
    delay: int = Field(0, ge=0, description="ms the close is held back")


class TimeoutAttrs(_Attrs):
    timeout: int = Field(0, ge=0, description="ms until the connection is closed; 0 = never")


class ResetPeerAttrs(_Attrs):
    timeout: int = Field(0, ge=0, description="ms after the first data until both ends see a reset")


class SlicerAttrs(_Attrs):
    average_size: int = Field(0, ge=0, description="bytes per slice on average")
    size_variation: int = Field(0, ge=0, description="bytes, uniform +-variation")
    delay: int = Field(0, ge=0, description="microseconds between slices")

    def slices(self, data: bytes, rng: random.Random) -> list[bytes]:
        """Cut data into slices whose concatenation is data."""
        if self.average_size <= 0 or len(data) <= 1:
            return [data]
        out: list[bytes] = []
        i = 0
        while i < len(data):
            size = self.average_size
            if self.size_variation:
                var = min(self.size_variation, self.average_size - 1)
                size += rng.randint(-var, var)
            size = max(size, 1)
            out.append(data[i : i + size])
            i += size
        return out


class LimitDataAttrs(_Attrs):
    bytes: int = Field(0, ge=0, description="bytes forwarded before the connection is closed")


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
    stream: Stream = "downstream"
    toxicity: float = Field(1.0, ge=0.0, le=1.0)
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
