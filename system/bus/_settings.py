"""Connection and behaviour settings for ``BusClient``: from code, a URL or the environment."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import unquote, urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from system.envelope import DEFAULT_MAX_SIZE


class BusSettings(BaseSettings):
    """Everything a ``BusClient`` needs. Environment variables use the ``SQUALL_BUS_`` prefix
    (``SQUALL_BUS_HOST``, ``SQUALL_BUS_PASSWORD``, ...), or give ``SQUALL_BUS_URL``.

    The password is a ``SecretStr``: it never shows in ``repr``, ``address`` or logs.
    Durations are seconds of the event loop's clock.
    """

    # hide_input_in_errors: a validation error must not echo the password back.
    model_config = SettingsConfigDict(
        env_prefix="SQUALL_BUS_", extra="forbid", validate_assignment=True, hide_input_in_errors=True
    )

    url: str | None = Field(
        None, repr=False, exclude=True, description="mqtt://user:pass@host:port, split into the fields below"
    )
    host: str = "127.0.0.1"
    port: int = Field(1883, ge=1, le=65535)
    username: str | None = None
    password: SecretStr | None = None
    client_id: str = Field(default_factory=lambda: f"squall-{uuid.uuid4().hex[:12]}", min_length=1, max_length=64)
    prefix: str = Field(
        "squall", min_length=1, description="namespace for availability, health, error and reply topics"
    )

    clean_session: bool = Field(False, description="False keeps a persistent session so QoS 1 survives disconnects")
    keep_alive: int = Field(10, ge=2)
    default_qos: int = Field(1, ge=0, le=1)
    connect_timeout: float = Field(10.0, gt=0)
    ack_timeout: float = Field(
        5.0,
        gt=0,
        description="how long a SUBACK/PUBACK/UNSUBACK may take, and then how long more once the broker "
        "answered a PINGREQ sent after the request; on a slow link the bus waits as long as the broker "
        "keeps sending, and a broker that sends nothing at all is given up on after twice this",
    )
    reconnect_initial: float = Field(0.1, gt=0)
    reconnect_max: float = Field(30.0, gt=0)

    seq_start: int = Field(0, ge=0, description="first envelope seq; raise it to stay monotonic across restarts")
    heartbeat_interval: float = Field(30.0, ge=0, description="0 disables the periodic health message")
    dedup_ttl: float = Field(300.0, gt=0)
    dedup_max: int = Field(100_000, ge=1)
    max_payload: int = Field(DEFAULT_MAX_SIZE, ge=256)

    outbound_capacity: int = Field(1000, ge=1)
    inbound_capacity: int = Field(1000, ge=1)
    control_capacity: int = Field(100, ge=1)

    request_timeout: float = Field(10.0, gt=0)
    shutdown_timeout: float = Field(5.0, ge=0)

    @model_validator(mode="before")
    @classmethod
    def _split_url(cls, values: Any) -> Any:
        if isinstance(values, dict) and values.get("url"):
            values = {**_parse_url(values["url"]), **{k: v for k, v in values.items() if k != "url"}}
        return values

    @model_validator(mode="after")
    def _forget_url(self) -> BusSettings:
        # The URL may hold the password in clear; keep only the split fields.
        self.__dict__["url"] = None
        return self

    @field_validator("reconnect_max")
    @classmethod
    def _max_not_below_initial(cls, v: float, info: Any) -> float:
        initial = info.data.get("reconnect_initial", 0.1)
        if v < initial:
            raise ValueError(f"reconnect_max ({v}) must be >= reconnect_initial ({initial})")
        return v

    @classmethod
    def from_url(cls, url: str, **overrides: Any) -> BusSettings:
        """``mqtt://user:pass@host:port``; query parameters and ``overrides`` set other fields."""
        return cls(url=url, **overrides)

    @property
    def address(self) -> str:
        """The broker address without the password, safe to log."""
        user = f"{self.username}@" if self.username else ""
        return f"mqtt://{user}{self.host}:{self.port}"

    @property
    def broker_uri(self) -> str:
        """What the transport connects to; credentials travel separately."""
        return f"mqtt://{self.host}:{self.port}"

    def topic(self, area: str, client_id: str | None = None) -> str:
        """The client's own system topic, e.g. ``squall/availability/<client_id>``."""
        return f"{self.prefix}/{area}/{client_id or self.client_id}"


def _parse_url(url: str) -> dict[str, Any]:
    parts = urlsplit(url)
    if parts.scheme != "mqtt":
        raise ValueError(f"bus url {_redact(url)!r} must start with mqtt:// (e.g. mqtt://user:pass@localhost:1883)")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"bus url {_redact(url)!r} has an invalid port") from None
    if not parts.hostname:
        raise ValueError(f"bus url {_redact(url)!r} has no host (e.g. mqtt://localhost:1883)")
    out: dict[str, Any] = {"host": parts.hostname}
    if port is not None:
        out["port"] = port
    if parts.username:
        out["username"] = unquote(parts.username)
    if parts.password:
        out["password"] = unquote(parts.password)
    for item in filter(None, parts.query.split("&")):
        key, _, value = item.partition("=")
        out[unquote(key)] = unquote(value)
    return out


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@", 1)
    return url
