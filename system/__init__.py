"""squall's message system: a small, real MQTT platform. Imports nothing of sim or chaos.

Public API (everything else is private):

- ``Envelope`` and its codec (``encode``/``decode``, ``EnvelopeError``, ``EnvelopeFactory``)
- ``BusClient``, ``BusSettings``, ``OverflowPolicy``, ``Message``, ``Subscription``, ``Health``
- the observer hook: ``Observer``, ``LoggingObserver`` and the event classes
- ``system.broker.EmbeddedBroker`` for an in-process broker
"""

from system.bus import (
    BusClient,
    BusClosed,
    BusSettings,
    Health,
    Message,
    OverflowPolicy,
    RequestFailed,
    RequestTimeout,
    Subscription,
)
from system.envelope import Envelope, EnvelopeError, EnvelopeFactory, decode, encode
from system.observer import (
    Connected,
    Delivered,
    Disconnected,
    Dropped,
    Event,
    Failed,
    LoggingObserver,
    Observer,
    Published,
    Reconnected,
    StateChanged,
)

__all__ = [
    "BusClient",
    "BusClosed",
    "BusSettings",
    "Connected",
    "Delivered",
    "Disconnected",
    "Dropped",
    "Envelope",
    "EnvelopeError",
    "EnvelopeFactory",
    "Event",
    "Failed",
    "Health",
    "LoggingObserver",
    "Message",
    "Observer",
    "OverflowPolicy",
    "Published",
    "Reconnected",
    "RequestFailed",
    "RequestTimeout",
    "StateChanged",
    "Subscription",
    "decode",
    "encode",
]
