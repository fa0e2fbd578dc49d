"""``host:port`` strings as Toxiproxy writes them: parse, resolve, format."""

from __future__ import annotations

import asyncio
import ipaddress
import socket

from chaos.proxy._errors import ApiError, listen_error

# An empty host means "all interfaces" to Toxiproxy; squall keeps proxies on loopback unless told.
DEFAULT_HOST = "127.0.0.1"


def split(address: str) -> tuple[str, int]:
    """``"[::1]:80"`` -> ``("::1", 80)``; raises ApiError (500, as Toxiproxy) when malformed."""
    host, sep, port_text = address.rpartition(":")
    if not sep:
        raise listen_error(f"listen tcp: address {address}: missing port in address")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise listen_error(f"listen tcp: address {address}: too many colons in address")
    try:
        port = int(port_text)
    except ValueError:
        raise listen_error(f"listen tcp: address {address}: invalid port") from None
    if not 0 <= port <= 65535:
        raise listen_error(f"listen tcp: address {address}: invalid port")
    return host, port


def join(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def resolve(address: str) -> tuple[str, int]:
    """The one IP a listen address binds to (IPv4 first, as Go's resolver prefers) and its port.

    An empty address is Toxiproxy's default, any free port; squall binds it on loopback.
    """
    if not address:
        return DEFAULT_HOST, 0
    host, port = split(address)
    if not host:
        return DEFAULT_HOST, port
    try:
        ipaddress.ip_address(host)
        return host, port
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise listen_error(f"listen tcp: lookup {host}: {exc.strerror or exc}") from None
    infos.sort(key=lambda info: info[0] != socket.AF_INET)
    return str(infos[0][4][0]), port


async def normalised(address: str) -> str:
    """The address as a bound proxy reports it, e.g. ``localhost:7070`` -> ``127.0.0.1:7070``."""
    return join(*await resolve(address))


def upstream_address(address: str) -> tuple[str, int]:
    """Host and port to dial; an empty host means this machine."""
    try:
        host, port = split(address)
    except ApiError as exc:
        raise ValueError(exc.message) from None
    return host or DEFAULT_HOST, port
