"""The reference fleet: rooms of temperature sensors, a heater per room, a controller that
keeps every room in its band, and a recorder storing all telemetry in sqlite.

``fleet_services(config, broker_url, rng_seed)`` gives the services as ``ServiceSpec``s, to
run under a ``Supervisor`` (``squall system up``) or one per host in a harness.
"""

from system.fleet._common import PREFIX, HeaterState, Reading, SetHeater
from system.fleet._config import FleetConfig
from system.fleet._controller import decide
from system.fleet._physics import Room
from system.fleet._recorder import TelemetryLog
from system.fleet._services import fleet_rooms, fleet_services, room_names
from system.supervisor import ServiceSpec

__all__ = [
    "PREFIX",
    "FleetConfig",
    "HeaterState",
    "Reading",
    "Room",
    "ServiceSpec",
    "SetHeater",
    "TelemetryLog",
    "decide",
    "fleet_rooms",
    "fleet_services",
    "room_names",
]
