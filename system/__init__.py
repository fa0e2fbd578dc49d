"""squall's message system: a small, real MQTT platform. Imports nothing of sim or chaos.

Public API (everything else is private):

- ``Envelope`` and its codec (``encode``/``decode``, ``EnvelopeError``, ``EnvelopeFactory``)
- ``BusClient``, ``BusSettings``, ``OverflowPolicy``, ``Message``, ``Subscription``, ``Health``
- the observer hook: ``Observer``, ``LoggingObserver`` and the event classes
- ``system.broker.EmbeddedBroker`` for an in-process broker
- the app layer: ``App``, ``Router``, ``Device``, ``Command``, ``StateMachine``, ``retry``;
  persistence: ``Store``, ``OnChange``, ``OnInterval``; ``Supervisor`` and ``ServiceSpec``
  (app, supervisor and fleet events live in ``system.app``; the fleet in ``system.fleet``)
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
    Connecting,
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
    "Connecting",
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

# The app layer, persistence and the supervisor (the reference fleet lives in system.fleet).
from system.app import App, Backoff, Command, CommandRejected, Device, Router, StateMachine, retry, retrying
from system.store import OnChange, OnInterval, Persisted, Store
from system.supervisor import DependencyError, ServiceSpec, Supervisor

__all__ += [
    "App",
    "Backoff",
    "Command",
    "CommandRejected",
    "DependencyError",
    "Device",
    "OnChange",
    "OnInterval",
    "Persisted",
    "Router",
    "ServiceSpec",
    "StateMachine",
    "Store",
    "Supervisor",
    "retry",
    "retrying",
]
