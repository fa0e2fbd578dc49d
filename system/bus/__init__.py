"""The bus client: envelopes over MQTT with reconnect, dedup, flow control and request/reply."""

from system.bus._client import BusClient
from system.bus._flow import FlowQueue, Offer, OverflowPolicy
from system.bus._settings import BusSettings
from system.bus._topics import matches
from system.bus._types import BusClosed, Handler, Health, Message, RequestFailed, RequestTimeout, Subscription

__all__ = [
    "BusClient",
    "BusClosed",
    "BusSettings",
    "FlowQueue",
    "Handler",
    "Health",
    "Message",
    "Offer",
    "OverflowPolicy",
    "RequestFailed",
    "RequestTimeout",
    "Subscription",
    "matches",
]
