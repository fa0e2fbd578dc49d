"""The same API calls and toxics against the real Toxiproxy and against `squall proxy`.

Runs when ``TOXIPROXY_SERVER`` names a toxiproxy-server binary (CI: the shared 2.12 one, see
.ci/run) and skips without it. Each step goes to both servers; status, Content-Type and body
(parsed JSON) must agree after normalising only what must differ: bound ports, the details
Go's JSON decoder writes after ``bad request body:``, the git suffix of the version, and the
deviations chaos/proxy documents (``Logger``, default listen host, float32 toxicity,
``/metrics``), which ``test_documented_deviations`` pins against the real server. Toxiproxy's
own CLI (toxiproxy-cli beside the server, or ``TOXIPROXY_CLI``) must see the two alike too.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from typing import Any, Iterator

import pytest

SERVER = os.environ.get("TOXIPROXY_SERVER", "")
TIMEOUT = 10.0

pytestmark = pytest.mark.skipif(
    not (SERVER and os.path.isfile(SERVER) and os.access(SERVER, os.X_OK)),
    reason="TOXIPROXY_SERVER does not name an executable toxiproxy-server (CI sets it to ../shared/reference/toxiproxy-server)",
)


# -- the two servers ------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_listening(port: int, proc: subprocess.Popen[bytes]) -> bool:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


@dataclass
class Server:
    name: str
    port: int
    proc: subprocess.Popen[bytes]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _start_real() -> Server:
    for _ in range(5):  # the port is picked before the server binds it: retry if someone took it
        port = _free_port()
        proc = subprocess.Popen(
            [SERVER, "-host", "127.0.0.1", "-port", str(port), "-seed", "1"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        if _wait_listening(port, proc):
            return Server("toxiproxy", port, proc)
        proc.kill()
        proc.wait()
    raise RuntimeError(f"{SERVER} did not start")


def _start_squall() -> Server:
    err = tempfile.TemporaryFile()
    proc = subprocess.Popen(
        [sys.executable, "-m", "sim.cli", "proxy", "--port", "0"], stdout=subprocess.DEVNULL, stderr=err
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        err.seek(0)
        found = re.search(rb"Toxiproxy API on http://127\.0\.0\.1:(\d+)", err.read())
        if found:
            return Server("squall", int(found.group(1)), proc)
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    err.seek(0)
    raise RuntimeError(f"squall proxy did not start: {err.read().decode(errors='replace')[-500:]}")


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[Server, Server]]:
    real = _start_real()
    try:
        squall = _start_squall()
    except BaseException:
        real.stop()
        raise
    try:
        yield real, squall
    finally:
        squall.stop()
        real.stop()


class Echo:
    """A real upstream: echoes every byte, on a thread of its own."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._echo, args=(conn,), daemon=True).start()

    @staticmethod
    def _echo(conn: socket.socket) -> None:
        with conn:
            try:
                while data := conn.recv(65536):
                    conn.sendall(data)
            except OSError:
                pass


@pytest.fixture(scope="module")
def echo() -> Echo:
    return Echo()


@pytest.fixture
def both(servers: tuple[Server, Server]) -> tuple[Server, Server]:
    """The two servers, emptied of proxies from earlier tests."""
    for server in servers:
        for name in call(server, "GET", "/proxies").json or {}:
            call(server, "DELETE", f"/proxies/{name}")
    return servers


# -- one request, and what may differ in its answer -----------------------------------------------


@dataclass
class Answer:
    status: int
    content_type: str | None
    body: bytes
    request_id: bool

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body.strip() else None


def call(server: Server, method: str, path: str, body: Any = None) -> Answer:
    if body is not None and not isinstance(body, (str, bytes)):
        body = json.dumps(body)
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=TIMEOUT)
    try:
        conn.request(method, path, body=body)
        r = conn.getresponse()
        data = r.read()
        return Answer(r.status, r.getheader("Content-Type"), data, r.getheader("X-Toxiproxy-Request-Id") is not None)
    finally:
        conn.close()


_BOUND = re.compile(r"^(\[[^\]]*\]|[^:\[\]]*):([1-9]\d*)$")


def _normal(doc: Any) -> Any:
    """What may differ between the two servers, made equal; everything else is compared."""
    if isinstance(doc, dict):
        out = {k: _normal(v) for k, v in doc.items() if k != "Logger"}  # a Go struct leaking into Toxiproxy's JSON
        if isinstance(out.get("listen"), str) and _BOUND.match(out["listen"]):
            out["listen"] = "<bound>"  # ephemeral port; the default host differs (documented)
        if isinstance(out.get("toxicity"), (int, float)):
            out["toxicity"] = float(f"{out['toxicity']:.6g}")  # Toxiproxy keeps a float32
        if isinstance(out.get("error"), str) and out["error"].startswith("bad request body: "):
            out["error"] = "bad request body: <detail>"  # Go's decoder names Go types; squall names the field
        if isinstance(out.get("version"), str):
            out["version"] = out["version"].split("-")[0]  # a source build adds its git describe suffix
        return out
    if isinstance(doc, list):
        return [_normal(v) for v in doc]
    return doc


def _view(answer: Answer) -> tuple[Any, ...]:
    body: Any = answer.body
    if answer.body.strip():
        try:
            body = _normal(json.loads(answer.body))
        except ValueError:
            pass
    return answer.status, answer.content_type, body, answer.request_id


def same(both: tuple[Server, Server], method: str, path: str, body: Any = None) -> Answer:
    """Send one request to both servers; their answers must agree. Returns the real one's."""
    real, squall = (call(server, method, path, body) for server in both)
    assert _view(squall) == _view(real), f"{method} {path} {body!r}:\n  toxiproxy {real}\n  squall    {squall}"
    return real


# -- the API, call for call -----------------------------------------------------------------------


def test_proxies_create_list_get_update_delete(both: tuple[Server, Server], echo: Echo) -> None:
    up = echo.address
    same(both, "GET", "/proxies")
    same(both, "GET", "/version")
    same(both, "POST", "/proxies", {"name": "a", "upstream": up, "listen": "127.0.0.1:0"})
    same(both, "POST", "/proxies", {"name": "b", "upstream": up})  # default listen
    same(both, "POST", "/proxies", {"name": "off", "upstream": up, "enabled": False})  # listen "" until enabled
    same(both, "POST", "/proxies", {"name": "a", "upstream": up})  # 409
    same(both, "POST", "/proxies", {"upstream": up})  # missing name
    same(both, "POST", "/proxies", {"name": "z"})  # missing upstream
    same(both, "POST", "/proxies", {"name": "e", "upstream": up, "enabled": None})
    same(both, "GET", "/proxies")
    same(both, "GET", "/proxies/a")
    same(both, "GET", "/proxies/nope")
    same(both, "POST", "/proxies/a", {"enabled": False})
    same(both, "POST", "/proxies/a", {"upstream": "127.0.0.1:1"})
    same(both, "PATCH", "/proxies/a", {"enabled": True, "upstream": up})
    same(both, "POST", "/proxies/off", {"enabled": True})
    same(both, "POST", "/proxies/nope", {"enabled": True})
    same(both, "DELETE", "/proxies/a")
    same(both, "DELETE", "/proxies/a")
    same(both, "POST", "/reset")
    same(both, "GET", "/proxies")


def test_toxics_create_list_get_update_delete(both: tuple[Server, Server], echo: Echo) -> None:
    same(both, "POST", "/proxies", {"name": "p", "upstream": echo.address, "listen": "127.0.0.1:0"})
    same(both, "POST", "/proxies/p/toxics", {"type": "latency", "attributes": {"latency": 100}})
    same(both, "POST", "/proxies/p/toxics", {"type": "latency", "attributes": {"latency": 100}})  # 409
    same(both, "POST", "/proxies/p/toxics", {"type": "latency", "stream": "upstream", "toxicity": 0.5})
    same(both, "POST", "/proxies/p/toxics", {"type": "latency", "stream": "sideways", "name": "s"})
    same(both, "POST", "/proxies/p/toxics", {"type": "latency", "stream": ""})
    same(both, "POST", "/proxies/p/toxics", {"type": "latency", "stream": "UPSTREAM"})  # kept as written
    same(both, "POST", "/proxies/p/toxics", {"type": "slicer", "stream": "DownStream", "name": "mixed"})
    same(both, "POST", "/proxies/p/toxics/mixed", {"toxicity": 0.5})
    same(both, "POST", "/proxies/p/toxics", {"type": "bogus", "name": "b"})
    same(both, "POST", "/proxies/p/toxics", {"name": "untyped"})
    same(both, "POST", "/proxies/p/toxics", {"type": "noop", "name": "n", "attributes": {"foo": 1}})
    same(both, "POST", "/proxies/p/toxics", {"type": "latency", "name": "nul", "attributes": None, "toxicity": None})
    for kind, attributes in (
        ("bandwidth", {"rate": 0}),
        ("slow_close", {"delay": 10}),
        ("timeout", {"timeout": 0}),
        ("reset_peer", {"timeout": 0}),
        ("slicer", {"average_size": 10, "size_variation": 2, "delay": 5}),
        ("limit_data", {"bytes": 1000}),
    ):
        same(both, "POST", "/proxies/p/toxics", {"type": kind, "name": kind, "stream": "upstream", "attributes": attributes})
    # Toxiproxy accepts any sign and any toxicity; it refuses integers written as floats.
    same(both, "POST", "/proxies/p/toxics", {"type": "latency", "name": "t2", "toxicity": 2})
    same(both, "POST", "/proxies/p/toxics", {"type": "latency", "name": "t-1", "toxicity": -1})
    same(both, "POST", "/proxies/p/toxics", {"type": "latency", "name": "neg", "attributes": {"latency": -5, "jitter": -1}})
    same(both, "POST", "/proxies/p/toxics", {"type": "slicer", "name": "negs", "attributes": {"average_size": -1, "size_variation": -2, "delay": -3}})
    same(both, "POST", "/proxies/p/toxics", {"type": "latency", "name": "big", "attributes": {"latency": 9999999999999}})
    for raw in ('{"latency": 100.0}', '{"latency": 1e2}', '{"latency": "100"}', '{"latency": true}', '{"latency": 99999999999999999999}'):
        same(both, "POST", "/proxies/p/toxics", '{"type": "latency", "name": "f", "attributes": %s}' % raw)
    same(both, "POST", "/proxies/p/toxics", {"type": "latency", "name": "f", "toxicity": "1"})
    same(both, "POST", "/proxies/p/toxics", {"type": "latency", "name": "f", "toxicity": True})
    same(both, "POST", "/proxies/p/toxics", {"type": "latency", "name": "f", "attributes": []})
    same(both, "GET", "/proxies/p/toxics")
    same(both, "GET", "/proxies/p/toxics/t2")
    same(both, "GET", "/proxies/p/toxics/nope")
    same(both, "GET", "/proxies/nope/toxics")
    same(both, "POST", "/proxies/p/toxics/t2", {"toxicity": 0.3})
    same(both, "POST", "/proxies/p/toxics/t2", {"attributes": {"jitter": 5}})
    same(both, "POST", "/proxies/p/toxics/t2", {"type": "bandwidth", "stream": "upstream", "name": "renamed"})  # ignored
    same(both, "POST", "/proxies/p/toxics/t2", {"attributes": {"latency": 1.5}})
    same(both, "POST", "/proxies/p/toxics/t2", {"toxicity": "x"})
    same(both, "PATCH", "/proxies/p/toxics/t2", {"toxicity": 0.1})
    same(both, "POST", "/proxies/p/toxics/nope", {"toxicity": 0.1})
    same(both, "DELETE", "/proxies/p/toxics/t2")
    same(both, "DELETE", "/proxies/p/toxics/t2")
    same(both, "GET", "/proxies/p")
    same(both, "POST", "/reset")
    same(both, "GET", "/proxies/p/toxics")


def test_populate(both: tuple[Server, Server], echo: Echo) -> None:
    up = echo.address
    same(both, "POST", "/populate", [{"name": "p1", "upstream": up}, {"name": "p2", "upstream": up, "enabled": False}])
    same(both, "POST", "/populate", [{"name": "p1", "upstream": up}])
    same(both, "POST", "/populate", [])
    same(both, "POST", "/populate", {"name": "p1", "upstream": up})
    same(both, "POST", "/populate", {"proxies": [{"name": "p3", "upstream": up}]})
    same(both, "POST", "/populate", [{"name": "p4"}])
    same(both, "POST", "/populate", [{"name": "g1", "upstream": up}, {"name": "g2", "upstream": up, "listen": "bad"}])
    same(both, "POST", "/populate")
    same(both, "POST", "/populate", "[{bad")
    same(both, "GET", "/proxies")


@pytest.mark.parametrize("method", ["HEAD", "PUT", "OPTIONS", "DELETE", "TRACE"])
@pytest.mark.parametrize("path", ["/proxies", "/version", "/reset", "/populate", "/proxies/p", "/proxies/p/toxics"])
def test_unsupported_methods(both: tuple[Server, Server], echo: Echo, method: str, path: str) -> None:
    same(both, "POST", "/proxies", {"name": "p", "upstream": echo.address, "listen": "127.0.0.1:0"})
    if (method, path) != ("DELETE", "/proxies/p"):
        same(both, method, path)


_MALFORMED = {
    "empty": "",
    "broken": "{bad",
    "array": "[]",
    "string": '"x"',
    "null": "null",
    "nan": "NaN",
    "nan-field": '{"name": NaN}',
    "infinity-field": '{"name": "x", "upstream": Infinity}',
    "name-number": '{"name": 5, "upstream": "x:1"}',
    "enabled-string": '{"name": "x", "upstream": "x:1", "enabled": "no"}',
    "nested-100": "[" * 100 + "]" * 100,
    "nested-20000-arrays": "[" * 20000 + "]" * 20000,
    "nested-20000-objects": '{"a":' * 20000 + "1" + "}" * 20000,
    "not-utf8": b"\xff\xfe",
    "trailing-garbage": '{"name": "t", "upstream": "127.0.0.1:1"} trailing',
    "two-values": '{"name": "t2", "upstream": "127.0.0.1:1"}{"name": "t3"}',
    "leading-space": '  \n {"name": "t4", "upstream": "127.0.0.1:1"}',
}


@pytest.mark.parametrize("body", list(_MALFORMED.values()), ids=list(_MALFORMED))
def test_malformed_bodies(both: tuple[Server, Server], echo: Echo, body: str | bytes) -> None:
    same(both, "POST", "/proxies", body)
    same(both, "POST", "/populate", body)
    same(both, "POST", "/proxies", {"name": "p", "upstream": echo.address, "listen": "127.0.0.1:0"})
    same(both, "POST", "/proxies/p/toxics", body)
    same(both, "POST", "/proxies/p", body)


@pytest.mark.parametrize(
    "request_bytes",
    [b"GARBAGE\r\n\r\n", b"GET /version HTTP/1.1\r\n\r\n", b"GET /version HTTP/9.9\r\nHost: x\r\n\r\n", b"GET /\x00 HTTP/1.1\r\nHost: x\r\n\r\n"],
    ids=["not-http", "no-host", "http-9.9", "nul-in-target"],
)
def test_requests_that_are_not_http(both: tuple[Server, Server], request_bytes: bytes) -> None:
    """Status and Content-Type as Go's server answers; the reason after ``400 Bad Request:`` is each parser's own."""

    def answer(server: Server) -> tuple[bytes, bytes]:
        with socket.create_connection(("127.0.0.1", server.port), TIMEOUT) as sock:
            sock.settimeout(TIMEOUT)
            sock.sendall(request_bytes)
            got = b""
            while b"\r\n\r\n" not in got and (chunk := sock.recv(65536)):
                got += chunk
        head = got.split(b"\r\n\r\n")[0].split(b"\r\n")
        content_type = next((h for h in head if h.lower().startswith(b"content-type:")), b"")
        return head[0].split(b" ")[1] if head[0] else b"", content_type

    _both(both, answer)


def test_unknown_routes(both: tuple[Server, Server]) -> None:
    for path in ("/", "/nope", "/proxies/a/b", "/proxies/a/toxics/b/c", "/proxies/"):
        same(both, "GET", path)


def test_documented_deviations(both: tuple[Server, Server], echo: Echo) -> None:
    """What squall does differently on purpose (chaos/proxy's docstring lists why), pinned against the real one."""
    real, squall = both
    create = {"name": "d", "upstream": echo.address}
    r, s = call(real, "POST", "/proxies", create), call(squall, "POST", "/proxies", create)
    assert "Logger" in r.json and "Logger" not in s.json
    assert r.json["listen"].startswith("[::]:") and s.json["listen"].startswith("127.0.0.1:")  # all interfaces vs loopback
    toxic = {"type": "latency", "toxicity": 0.1234567891}
    r, s = (call(server, "POST", "/proxies/d/toxics", toxic) for server in both)
    assert r.json["toxicity"] == 0.12345679 and s.json["toxicity"] == 0.1234567891  # float32 vs float64
    assert call(real, "GET", "/metrics").status == 404 and call(squall, "GET", "/metrics").status == 200


def test_slicer_of_average_zero_passes_whole_where_toxiproxy_dies(both: tuple[Server, Server], echo: Echo) -> None:
    """Measured: Toxiproxy's halving of a chunk at average_size 0 never ends, and its stack overflow kills the server."""
    toxic = {"type": "slicer", "stream": "upstream", "attributes": {"average_size": 0}}
    with _proxied(both[1], echo, toxic) as sock:
        sock.sendall(b"whole")
        assert sock.recv(100) == b"whole"
    doomed = _start_real()  # not the module's server: this one dies
    try:
        with _proxied(doomed, echo, toxic) as sock:
            sock.sendall(b"whole")
            doomed.proc.wait(timeout=60)
        assert doomed.proc.returncode != 0
    finally:
        doomed.stop()


# -- the toxics, on real bytes --------------------------------------------------------------------


def _proxied(server: Server, echo: Echo, toxic: dict[str, Any]) -> socket.socket:
    """A connection through a fresh proxy on ``server`` carrying ``toxic`` (named "t"; the proxy's name is in ``_names``)."""
    name = f"bytes{time.monotonic_ns()}"
    created = call(server, "POST", "/proxies", {"name": name, "upstream": echo.address, "listen": "127.0.0.1:0"})
    assert created.status == 201, created
    added = call(server, "POST", f"/proxies/{name}/toxics", {"name": "t", **toxic})
    assert added.status == 200, added
    host, _, port = created.json["listen"].rpartition(":")
    sock = socket.create_connection((host, int(port)), TIMEOUT)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.settimeout(TIMEOUT)
    _names[sock.fileno()] = name
    return sock


_names: dict[int, str] = {}


def _closed(sock: socket.socket, within: float) -> bool:
    """True when the peer closed (EOF or reset) within ``within`` seconds; data read is dropped."""
    sock.settimeout(within)
    try:
        while sock.recv(65536):
            pass
        return True
    except (socket.timeout, TimeoutError):
        return False
    except OSError:
        return True
    finally:
        sock.settimeout(TIMEOUT)


def _both(both: tuple[Server, Server], behaviour: Any) -> None:
    """Run one behaviour against each server; the outcomes must agree (and are shown when not)."""
    outcomes = {server.name: behaviour(server) for server in both}
    assert outcomes["squall"] == outcomes["toxiproxy"], outcomes


def test_timeout_restarts_on_data_and_fires_after_silence(both: tuple[Server, Server], echo: Echo) -> None:
    def behaviour(server: Server) -> tuple[bool, bool]:
        with _proxied(server, echo, {"type": "timeout", "stream": "upstream", "attributes": {"timeout": 1000}}) as sock:
            for _ in range(25):  # 2.5 s of talking, every 0.1 s: never 1 s of silence
                sock.sendall(b"x")
                if _closed(sock, 0.1):
                    return True, True
            return False, _closed(sock, TIMEOUT)  # now silent: closed after 1 s

    _both(both, behaviour)


def test_bandwidth_rate_zero_passes_nothing_until_removed(both: tuple[Server, Server], echo: Echo) -> None:
    def behaviour(server: Server) -> tuple[bytes, bytes]:
        with _proxied(server, echo, {"type": "bandwidth", "stream": "upstream", "attributes": {"rate": 0}}) as sock:
            sock.sendall(b"held")
            sock.settimeout(1.0)
            try:
                early = sock.recv(100)
            except (socket.timeout, TimeoutError):
                early = b""
            call(server, "DELETE", f"/proxies/{_names[sock.fileno()]}/toxics/t")
            sock.settimeout(TIMEOUT)
            late = b""
            while len(early + late) < 4:
                chunk = sock.recv(100)
                if not chunk:
                    break
                late += chunk
            return early, late

    _both(both, behaviour)


def test_slicer_halves_each_chunk(both: tuple[Server, Server], echo: Echo) -> None:
    """1000 B at 100 +- 0 is 16 pieces of 62/63 B (halving), not 10 of 100; 20 ms apart so reads see them."""
    cuts = set(range(0, 1001, 125)) | {i * 125 + 62 for i in range(8)}

    def behaviour(server: Server) -> tuple[bool, int]:
        toxic = {"type": "slicer", "stream": "downstream", "attributes": {"average_size": 100, "size_variation": 0, "delay": 20000}}
        with _proxied(server, echo, toxic) as sock:
            sock.sendall(bytes(1000))
            got = 0
            ends = []
            while got < 1000:
                got += len(sock.recv(65536))
                ends.append(got)
            # A slow reader may merge pieces, never split them: every read ends on a cut.
            return set(ends) <= cuts, got

    _both(both, behaviour)


def _delays(server: Server, echo: Echo, stream: str, ms: int) -> bool:
    """Whether a round trip through a latency toxic on ``stream`` takes at least ``ms``."""
    with _proxied(server, echo, {"type": "latency", "stream": stream, "attributes": {"latency": ms}}) as sock:
        start = time.monotonic()
        sock.sendall(b"ping")
        assert sock.recv(100) == b"ping"
        return time.monotonic() - start >= ms / 1000  # a lower bound: load only adds to it


def test_stream_case_is_kept_and_still_acts(both: tuple[Server, Server], echo: Echo) -> None:
    _both(both, lambda server: _delays(server, echo, "UPSTREAM", 300))


def test_limit_data_latency_reset_and_noop(both: tuple[Server, Server], echo: Echo) -> None:
    def limit(server: Server) -> tuple[bytes, bool]:
        with _proxied(server, echo, {"type": "limit_data", "stream": "downstream", "attributes": {"bytes": 10}}) as sock:
            sock.sendall(bytes(range(50)))
            got = b""
            while chunk := sock.recv(100):
                got += chunk
            return got, True

    def latency(server: Server) -> bool:
        return _delays(server, echo, "upstream", 200)

    def reset(server: Server) -> str:
        with _proxied(server, echo, {"type": "reset_peer", "stream": "upstream", "attributes": {"timeout": 100}}) as sock:
            sock.sendall(b"x")
            try:
                while sock.recv(100):
                    pass
                return "eof"
            except ConnectionResetError:
                return "reset"

    def noop(server: Server) -> bytes:
        with _proxied(server, echo, {"type": "noop"}) as sock:
            sock.sendall(b"through")
            return sock.recv(100)

    for behaviour in (limit, latency, reset, noop):
        _both(both, behaviour)


# -- Toxiproxy's own CLI, against either server -----------------------------------------------------

CLI = os.environ.get("TOXIPROXY_CLI") or os.path.join(os.path.dirname(SERVER), "toxiproxy-cli")
_PORT = re.compile(r"127\.0\.0\.1:[1-9]\d*")
_DETAIL = re.compile(r"bad request body: .*")


def test_toxiproxy_cli_sees_the_same_server(both: tuple[Server, Server], echo: Echo) -> None:
    if not os.access(CLI, os.X_OK):
        pytest.skip(f"no toxiproxy-cli at {CLI} (set TOXIPROXY_CLI)")
    steps = [
        ["list"],
        ["create", "-l", "127.0.0.1:0", "-u", echo.address, "db"],
        ["create", "-l", "127.0.0.1:0", "-u", echo.address, "db"],
        ["list"],
        ["toxic", "add", "-t", "latency", "-a", "latency=100", "db"],
        ["toxic", "add", "-t", "bandwidth", "-a", "rate=1.5", "db"],
        ["toxic", "add", "-t", "slicer", "-u", "-a", "average_size=10", "-tox", "0.5", "db"],
        ["inspect", "db"],
        ["toxic", "update", "-n", "latency_downstream", "-a", "jitter=5", "db"],
        ["toxic", "delete", "-n", "latency_downstream", "db"],
        ["toggle", "db"],
        ["inspect", "db"],
        ["delete", "db"],
        ["delete", "db"],
        ["inspect", "nope"],
    ]
    for step in steps:
        seen = []
        for server in both:
            done = subprocess.run(
                [CLI, "-h", f"http://127.0.0.1:{server.port}", *step], capture_output=True, text=True, timeout=TIMEOUT
            )
            text = _DETAIL.sub("bad request body: <detail>", _PORT.sub("<port>", done.stdout + done.stderr))
            seen.append((done.returncode, text))
        assert seen[1] == seen[0], f"toxiproxy-cli {' '.join(step)}:\n  toxiproxy {seen[0]}\n  squall    {seen[1]}"
