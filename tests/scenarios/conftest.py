"""Planted bugs shared by the scenario tests: each a test-only patch, never production code."""

from __future__ import annotations

import pytest


@pytest.fixture
def no_resubscribe(monkeypatch):
    """A bus client that subscribes on its first connection only: a classic reconnect bug."""
    from system.bus import _client

    original = _client.BusClient._on_open

    async def on_open(self, link):
        if getattr(self, "_opened_once", False):
            saved, self._subs = self._subs, {}
            try:
                return await original(self, link)
            finally:
                self._subs = saved
        self._opened_once = True
        return await original(self, link)

    monkeypatch.setattr(_client.BusClient, "_on_open", on_open)
