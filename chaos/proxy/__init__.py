"""A Toxiproxy-compatible chaos proxy: Toxiproxy 2.x's HTTP API, squall's toxic model.

    async with ProxyServer(port=0) as server:
        proxy = await server.create("mqtt", upstream="127.0.0.1:1883")
        proxy.add_toxic(Toxic.model_validate({"type": "latency", "attributes": {"latency": 100}}))
        # clients connect to proxy.listen; toxiproxy clients talk to server.url

    with ProxyProcess() as proxy:  # the same server in a process of its own, on another core
        toxiproxy.Toxiproxy(...)    # drive it over HTTP at proxy.url

Toxics are ``sim.faults.Toxic``, the same model the simulated network uses.

Fidelity: the API answers as the real Toxiproxy 2.12 does, measured side by side by
tests/chaos/test_toxiproxy_differential.py (status codes, bodies, Content-Type, a bare 405
for HEAD and other methods, text/plain errors, ``{"proxies": null}``, the stream's case kept
as written, Go's integer and nesting rules), and so do the toxics on real bytes (timeout's
clock restarts on data, slicer halves, bandwidth rate 0 holds everything). Where squall
differs on purpose, the test pins it against the real one:

- A proxy without ``listen`` binds loopback, ``127.0.0.1:<free port>``; Toxiproxy binds all
  interfaces (``[::]:<port>``). A chaos proxy on a shared machine should not face the network;
  ask for ``0.0.0.0:0`` (or ``[::]:0``) to listen on every interface.
- Proxy JSON has no ``"Logger": {}`` (a Go struct Toxiproxy leaks into its output).
- ``toxicity`` is kept as a float64 (``0.1234567891``); Toxiproxy rounds it to a float32
  (``0.12345679``). Either draws the same share of connections.
- After ``bad request body: `` the detail names the field in squall's words
  (``latency: Input should be a valid integer``), not Go's types (``cannot unmarshal number
  100.0 into Go struct field LatencyToxic.attributes.latency of type int64``); the status and
  the prefix clients match on are the same. Nesting deeper than Python's stack (~1000 levels,
  Toxiproxy: 10000) is refused with ``JSON nested too deeply``.
- A request body over 1 MiB is refused with 413 (JSON, connection closed); Toxiproxy reads
  bodies of any size. Requests that are not HTTP get Go's plain-text ``400 Bad Request: ...``
  (or 505 for an unknown HTTP version), the reason in h11's words.
- ``GET /metrics`` always serves Prometheus counters; Toxiproxy answers 404 unless started
  with ``-proxy-metrics`` or ``-runtime-metrics``.
- A slicer with ``average_size`` of 0 or less passes chunks whole; Toxiproxy's halving never
  ends and the stack overflow kills the whole server.
- Out of file descriptors, creating a proxy is a 500 naming the limit and the way out
  (``too many open files (RLIMIT_NOFILE=64); ... ulimit -n``) where Toxiproxy says only
  ``socket: too many open files``; an accept that fails for the same reason is one line on
  stderr, and both recover once descriptors are free.
"""

from chaos.proxy._client import ToxiproxyAPI
from chaos.proxy._collection import ProxySpec
from chaos.proxy._errors import ApiError
from chaos.proxy._process import ProxyProcess
from chaos.proxy._proxy import Proxy
from chaos.proxy._server import DEFAULT_PORT, ProxyServer
from chaos.proxy._standalone import load_config, run
from chaos.proxy._thread import ProxyServerThread
from sim.faults.toxics import Toxic

__all__ = [
    "DEFAULT_PORT",
    "ApiError",
    "Proxy",
    "ProxyProcess",
    "ProxyServer",
    "ProxyServerThread",
    "ProxySpec",
    "Toxic",
    "ToxiproxyAPI",
    "load_config",
    "run",
]
