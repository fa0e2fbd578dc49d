"""``FleetConfig``: the size and pace of the reference fleet."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

# Seconds of the event loop; the bounds turn a typo (1e-9, 1e308) into an error instead of a hang.
_Interval = Annotated[float, Field(ge=0.01, le=86_400)]
_Celsius = Annotated[float, Field(ge=-100, le=100)]


class FleetConfig(BaseModel):
    """Rooms of temperature sensors and one heater each, a controller keeping every room in
    ``band`` (low, high in °C), and a recorder. Durations are seconds of the event loop."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    rooms: int = Field(2, ge=1, le=1000)
    sensors_per_room: int = Field(2, ge=1, le=100)
    telemetry_interval: _Interval = Field(
        5.0,
        description="seconds between sensor readings and heater state reports (0.01 to 86400)",
    )
    qos: Literal[0, 1] = 1
    payload_bytes: int = Field(
        0, ge=0, le=200_000, description="padding added to each sensor reading"
    )
    band: tuple[_Celsius, _Celsius] = (19.0, 23.0)
    control_interval: _Interval = Field(
        10.0, description="seconds between the controller's decisions (0.01 to 86400)"
    )
    outside: _Celsius = Field(
        10.0, description="outside temperature the rooms drift towards, °C (-100 to 100)"
    )
    command_timeout: _Interval = Field(
        5.0, description="seconds the controller waits for a heater's reply (0.01 to 86400)"
    )
    queue_capacity: int | None = Field(
        None,
        ge=1,
        description="every service's outbound and inbound queue size (None: the bus's default)",
    )
    telemetry_policy: Literal["block", "drop", "latest"] = Field(
        "block",
        description="overflow policy of the telemetry topics, in the sensors' and the recorder's queues",
    )
    record_seconds: float = Field(
        0.0,
        ge=0,
        description="seconds the recorder's handler takes per message (a slow consumer)",
    )

    @model_validator(mode="after")
    def _band_ordered(self) -> FleetConfig:
        low, high = self.band
        if not low < high:
            raise ValueError(
                f"band must be (low, high) with low < high, got {self.band}"
            )
        if self.outside >= low:
            raise ValueError(
                f"outside ({self.outside}) must be below the band's low ({low}) so the heaters have work to do"
            )
        return self
