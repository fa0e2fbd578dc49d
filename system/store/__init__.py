"""Persistence for services: a small sqlite key-value store and the policies that decide when
a value is written (on every change, or every so many seconds)."""

from system.store._persisted import OnChange, OnInterval, Persisted, PersistPolicy
from system.store._sqlite import Store

__all__ = ["OnChange", "OnInterval", "PersistPolicy", "Persisted", "Store"]
