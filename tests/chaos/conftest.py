"""Fixtures for the chaos proxy's tests; helpers live in proxy_helpers.py."""

from __future__ import annotations

from typing import Iterator

import pytest

from chaos.proxy import ProxyServerThread


@pytest.fixture
def proxy_thread() -> Iterator[ProxyServerThread]:
    """A server on its own loop in a thread, with toxiproxy-python's client pointed at it."""
    from toxiproxy.api import APIConsumer

    saved = (APIConsumer.host, APIConsumer.port)
    with ProxyServerThread() as server:
        APIConsumer.host, APIConsumer.port = "127.0.0.1", server.port
        try:
            yield server
        finally:
            APIConsumer.host, APIConsumer.port = saved
