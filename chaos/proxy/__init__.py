"""A Toxiproxy-compatible chaos proxy: Toxiproxy 2.x's HTTP API, squall's toxic model.

    async with ProxyServer(port=0) as server:
        proxy = await server.create("mqtt", upstream="127.0.0.1:1883")
        proxy.add_toxic(Toxic.model_validate({"type": "latency", "attributes": {"latency": 100}}))
        # clients connect to proxy.listen; toxiproxy clients talk to server.url

    with ProxyProcess() as proxy:  # the same server in a process of its own, on another core
        toxiproxy.Toxiproxy(...)    # drive it over HTTP at proxy.url

Toxics are ``sim.faults.Toxic``, the same model the simulated network uses.
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
