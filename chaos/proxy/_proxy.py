"""One proxy: a listener, its upstream, its toxics and the connections it carries."""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import random
import socket
from typing import Any

from chaos.proxy import _address
from chaos.proxy._errors import TOXIC_EXISTS, TOXIC_NOT_FOUND, listen_error, out_of_files
from chaos.proxy._link import Link
from chaos.proxy._metrics import ByteCounts
from sim.faults.toxics import Toxic

log = logging.getLogger(__name__)


def _reason(exc: OSError) -> str:
    return os.strerror(exc.errno).lower() if exc.errno else str(exc)


def _listener(host: str, port: int) -> socket.socket:
    """A bound TCP socket for ``host:port``; OSError, with Go's words, when it cannot be."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        sock = socket.socket(family, socket.SOCK_STREAM)
    except OSError as exc:
        raise OSError(exc.errno, f"socket: {_reason(exc)}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise OSError(exc.errno, f"bind: {_reason(exc)}") from None
    except BaseException:
        sock.close()
        raise
    return sock


class Proxy:
    """Accepts clients on ``listen`` and connects each to ``upstream`` through the toxics.

    ``listen`` reads back as the bound address once started (``127.0.0.1:0`` becomes the
    real port). Toxics apply to open connections too, in the order they were added.
    """

    def __init__(
        self, name: str, listen: str, upstream: str, *, counts: ByteCounts, rng: random.Random | None = None
    ) -> None:
        self.name = name
        self.listen = listen
        self.upstream = upstream
        self.enabled = False
        self.links: set[Link] = set()
        self._toxics: list[Toxic] = []
        self._counts = counts
        self._rng = rng or random.Random()
        self._server: asyncio.Server | None = None

    def __repr__(self) -> str:
        state = "enabled" if self.enabled else "disabled"
        return f"<Proxy {self.name} {self.listen} -> {self.upstream} {state}, {len(self._toxics)} toxics>"

    # -- running --------------------------------------------------------------------------------

    async def start(self) -> bool:
        """Listen; False when it already was. Raises ApiError (500) when the address is unusable."""
        if self.enabled:
            return False
        host, port = await _address.resolve(self.listen)
        loop = asyncio.get_running_loop()
        where = f"listen tcp {_address.join(host, port)}"
        try:
            # Our own socket: asyncio's create_server skips a socket() that fails (out of file
            # descriptors) and hands back a server listening nowhere.
            sock = _listener(host, port)
        except OSError as exc:
            if exc.errno in (errno.EMFILE, errno.ENFILE):
                raise listen_error(out_of_files(f"{where}: socket")) from None
            raise listen_error(f"{where}: {exc.strerror}") from None
        try:
            server = await loop.create_server(self._accept, sock=sock, backlog=512)
        except OSError as exc:
            sock.close()
            raise listen_error(f"{where}: listen: {_reason(exc)}") from None
        bound = server.sockets[0].getsockname()
        self._server = server
        self.listen = _address.join(bound[0], bound[1])
        self.enabled = True
        log.info("proxy %s listening on %s -> %s", self.name, self.listen, self.upstream)
        return True

    def stop(self) -> None:
        """Stop listening and close every open connection."""
        if not self.enabled:
            return
        self.enabled = False
        if self._server is not None:
            self._server.close()
            self._server = None
        for link in list(self.links):
            link.close()

    def _accept(self) -> asyncio.Protocol:
        return Link(self, self._rng).client

    def upstream_address(self) -> tuple[str, int]:
        return _address.upstream_address(self.upstream)

    def counts(self, direction: str) -> list[int]:
        return self._counts.cell(direction, self.name, self.listen, self.upstream)

    def link_opened(self, link: Link) -> None:
        self.links.add(link)

    def link_closed(self, link: Link) -> None:
        self.links.discard(link)

    # -- toxics ---------------------------------------------------------------------------------

    def toxics(self) -> list[Toxic]:
        """Upstream toxics, then downstream ones, each in the order added (Toxiproxy's listing)."""
        return [t for t in self._toxics if t.direction == "upstream"] + [
            t for t in self._toxics if t.direction == "downstream"
        ]

    def toxic(self, name: str) -> Toxic:
        for toxic in self._toxics:
            if toxic.name == name:
                return toxic
        raise TOXIC_NOT_FOUND

    def add_toxic(self, toxic: Toxic | dict[str, Any]) -> Toxic:
        """Add a toxic (a Toxic, or its JSON as a dict); it applies to open connections at once."""
        if not isinstance(toxic, Toxic):
            toxic = Toxic.model_validate(toxic)
        if any(t.name == toxic.name for t in self._toxics):
            raise TOXIC_EXISTS
        self._toxics.append(toxic)
        for link in list(self.links):
            link.add_toxic(toxic)
        return toxic

    def update_toxic(self, name: str, patch: dict[str, Any]) -> Toxic:
        """Replace the toxicity and/or merge attributes; the name, type and stream stay."""
        old = self.toxic(name)
        new = old.updated({k: v for k, v in patch.items() if k in ("toxicity", "attributes")})
        self._toxics[self._toxics.index(old)] = new
        for link in list(self.links):
            link.update_toxic(new)
        return new

    def remove_toxic(self, name: str) -> None:
        toxic = self.toxic(name)
        self._toxics.remove(toxic)
        for link in list(self.links):
            link.remove_toxic(name)

    def reset_toxics(self) -> None:
        for toxic in self.toxics():
            self.remove_toxic(toxic.name)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "listen": self.listen,
            "upstream": self.upstream,
            "enabled": self.enabled,
            "toxics": [t.to_json() for t in self.toxics()],
        }
