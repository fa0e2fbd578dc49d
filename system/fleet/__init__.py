"""The reference fleet: rooms of temperature sensors, a heater per room, a controller that
keeps every room in its band, and a recorder storing all telemetry in sqlite.

``fleet_services(config, broker_url, rng_seed)`` gives the services as ``ServiceSpec``s, to
run under a ``Supervisor`` (``squall system up``) or one per host in a harness.

Topics (payloads are envelopes, ``system.envelope``)::

    fleet/<room>/sensor-<j>/telemetry/temperature   {"room", "sensor", "celsius", "pad"}
    fleet/<room>/heater/telemetry/state             {"room", "on"}
    fleet/<room>/heater/cmd/set | on | off          request -> reply {"room", "on"}
    fleet/<room>/heater/state/power                 retained {"state", "trigger"}
    fleet/<room>/<device>/availability | health | errors
    fleet/controller/telemetry/rooms                {room: {"average", "heater"}}
    fleet/recorder/telemetry/stats                  {"rows", "duplicates"}

Watch with ``mosquitto_sub -t 'fleet/#' -v``; switch a heater on with an envelope, e.g.
``mosquitto_pub -t fleet/r1/heater/cmd/on -m '{"id":"x1","seq":0,"ts":0,"source":"me","kind":"request","correlation_id":"c1"}'``
(the reply comes on ``squall/reply/me``).

Observer events besides the bus's: ``room_temperature`` (each heater, every telemetry
interval: the room's true temperature, band and heater), ``device_state`` (heater power),
``command_sent`` / ``command_done`` (the controller's round trips), ``device_*`` and, under
a supervisor, ``service``.
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
