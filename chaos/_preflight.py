"""What a chaos run is pointed at (``--broker``, ``--upstream``, ``TOXIPROXY_URL``), checked first.

A typo or a broker that is not there must be one line at once, not a run in which nothing was
delivered (and nothing could be judged). The broker probe speaks just enough MQTT 3.1.1 to know
that an MQTT broker answers: one CONNECT, one CONNACK, one DISCONNECT; the Toxiproxy probe asks
for ``/version``.
"""

from __future__ import annotations

import os
import socket
import urllib.error
import urllib.request
from urllib.parse import unquote, urlsplit

from sim.errors import BadInput, shown
from system.broker.conformance._wire import connect_bytes  # the conformance suite's packet builder

PROBE_SECONDS = 3.0
_EXAMPLE = "give an MQTT URL like mqtt://127.0.0.1:1883"


def preflight(broker_url: str | None, upstream: str | None, toxiproxy_url: str | None) -> None:
    """Bad input, at once, unless every address a chaos run needs is well formed and answers."""
    if upstream is not None:
        upstream_address(upstream)
    if toxiproxy_url is not None:
        probe_toxiproxy(toxiproxy_url)
    if broker_url is not None:
        probe_broker(broker_url)


def broker_address(url: str) -> tuple[str, int]:
    """(host, port) of an ``mqtt://[user:password@]host[:port]`` URL (port 1883 by default)."""
    where = f"--broker {shown(url, 80)}"
    parts = urlsplit(url)
    if parts.scheme != "mqtt" or not parts.netloc:
        raise BadInput(f"{where}: {_EXAMPLE}")
    try:
        port = parts.port
    except ValueError:
        raise BadInput(f"{where}: the port must be a number from 1 to 65535; {_EXAMPLE}") from None
    if not parts.hostname:
        raise BadInput(f"{where}: no host; {_EXAMPLE}")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise BadInput(f"{where}: an MQTT URL has no path or query; {_EXAMPLE}")
    if port == 0:
        raise BadInput(f"{where}: port 0 is not a broker's port; {_EXAMPLE}")
    return parts.hostname, port or 1883


def upstream_address(text: str) -> str:
    """``HOST:PORT`` as the proxy dials it."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise BadInput(f"--upstream {shown(text, 80)}: give HOST:PORT, e.g. host.docker.internal:1883")
    return text


def probe_broker(url: str, timeout: float = PROBE_SECONDS) -> None:
    """Bad input unless an MQTT broker answers a CONNECT at url within timeout seconds."""
    host, port = broker_address(url)
    parts = urlsplit(url)
    where = f"--broker {shown(url, 80)}"
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            user = unquote(parts.username) if parts.username else None
            password = unquote(parts.password) if user and parts.password else None
            sock.sendall(connect_bytes(f"squall-probe-{os.getpid()}", keepalive=10, username=user, password=password))
            reply = sock.recv(4)
            if reply[:1] == b"\x20":
                sock.sendall(b"\xe0\x00")
    except TimeoutError:
        raise BadInput(f"{where}: no answer within {timeout:g} s; start the broker there, or leave out --broker to use the embedded one") from None
    except OSError as exc:
        raise BadInput(f"{where}: cannot connect ({exc.strerror or exc}); start the broker there, or leave out --broker to use the embedded one") from None
    if reply[:1] != b"\x20":
        raise BadInput(f"{where}: something listens there but does not answer MQTT (no CONNACK to a CONNECT); give an MQTT broker's address")


def probe_toxiproxy(url: str, timeout: float = PROBE_SECONDS) -> None:
    """Bad input unless a Toxiproxy API answers ``GET /version`` at url."""
    where = f"TOXIPROXY_URL={shown(url, 80)}"
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = -1
    if parts.scheme not in ("http", "https") or not parts.hostname or port == -1:
        raise BadInput(f"{where}: give the API's URL like http://127.0.0.1:8474, or unset it to use squall's own proxy")
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/version", timeout=timeout):
            pass
    except urllib.error.HTTPError:
        pass  # something answered HTTP: the API calls will say more if it is not Toxiproxy
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise BadInput(f"{where}: cannot reach it ({shown(str(reason), 80)}); start toxiproxy-server there, or unset TOXIPROXY_URL to use squall's own proxy") from None
