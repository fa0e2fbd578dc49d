"""The unmodified toxiproxy-python client against our server (running in a background thread)."""

from __future__ import annotations

import socket

import pytest
from toxiproxy import Toxiproxy
from toxiproxy.api import APIConsumer
from toxiproxy.exceptions import InvalidToxic, NotFound, ProxyExists

from chaos.proxy import ProxyServer, ProxyServerThread

UPSTREAM = "127.0.0.1:20001"


def accepts(listen: str) -> bool:
    host, _, port = listen.rpartition(":")
    with socket.socket() as sock:
        sock.settimeout(10)
        return sock.connect_ex((host, int(port))) == 0


def test_running_and_version(proxy_thread: ProxyServerThread) -> None:
    client = Toxiproxy()
    assert client.running() is True
    assert client.version() == b'{"version": "2.12.0"}\n'


def test_create_list_get_destroy(proxy_thread: ProxyServerThread) -> None:
    client = Toxiproxy()
    proxy = client.create(upstream=UPSTREAM, name="db")
    assert proxy.name == "db" and proxy.upstream == UPSTREAM and proxy.enabled is True
    assert proxy.listen.startswith("127.0.0.1:") and not proxy.listen.endswith(":0")
    assert accepts(proxy.listen)
    assert list(client.proxies()) == ["db"]
    got = client.get_proxy("db")
    assert got is not None and got.listen == proxy.listen
    assert client.get_proxy("other") is None
    assert proxy.destroy() is True
    assert client.proxies() == {}
    assert not accepts(proxy.listen)


def test_its_error_classes(proxy_thread: ProxyServerThread) -> None:
    client = Toxiproxy()
    proxy = client.create(upstream=UPSTREAM, name="db")
    with pytest.raises(ProxyExists):
        client.create(upstream=UPSTREAM, name="db")  # the client checks the listing itself
    with pytest.raises(ProxyExists, match="proxy already exists"):
        APIConsumer.post("/proxies", json={"name": "db", "upstream": UPSTREAM})  # the server's 409
    proxy.add_toxic(type="latency", attributes={"latency": 10})
    with pytest.raises(ProxyExists, match="toxic already exists"):
        proxy.add_toxic(type="latency", attributes={"latency": 10})
    with pytest.raises(InvalidToxic, match="invalid toxic type"):
        proxy.add_toxic(type="earthquake")
    with pytest.raises(InvalidToxic, match="stream was invalid"):
        proxy.add_toxic(type="latency", stream="sideways")
    with pytest.raises(NotFound, match="toxic not found"):
        proxy.destroy_toxic("nope")
    proxy.destroy()
    with pytest.raises(NotFound, match="proxy not found"):
        proxy.destroy()
    with pytest.raises(NotFound):
        proxy.toxics()


def test_add_list_and_remove_toxics(proxy_thread: ProxyServerThread) -> None:
    client = Toxiproxy()
    proxy = client.create(upstream=UPSTREAM, name="db")
    proxy.add_toxic(type="latency", attributes={"latency": 100, "jitter": 5})
    proxy.add_toxic(name="cut", type="limit_data", stream="upstream", toxicity=0.5, attributes={"bytes": 64})
    toxics = proxy.toxics()
    assert set(toxics) == {"latency_downstream", "cut"}
    latency = proxy.get_toxic("latency_downstream")
    assert (latency.type, latency.stream, latency.toxicity) == ("latency", "downstream", 1.0)
    assert latency.attributes == {"latency": 100, "jitter": 5}
    cut = toxics["cut"]
    assert (cut.type, cut.stream, cut.toxicity, cut.attributes) == ("limit_data", "upstream", 0.5, {"bytes": 64})
    assert proxy.destroy_toxic("cut") is True
    assert set(proxy.toxics()) == {"latency_downstream"}
    assert proxy.get_toxic("cut") is None


def test_disable_enable_and_down(proxy_thread: ProxyServerThread) -> None:
    client = Toxiproxy()
    proxy = client.create(upstream=UPSTREAM, name="db")
    proxy.disable()
    assert proxy.enabled is False and client.get_proxy("db").enabled is False
    assert not accepts(proxy.listen)
    proxy.enable()
    assert client.get_proxy("db").enabled is True
    assert accepts(proxy.listen)
    with proxy.down():
        assert client.get_proxy("db").enabled is False
        assert not accepts(proxy.listen)
    assert client.get_proxy("db").enabled is True
    assert accepts(proxy.listen)


def test_reset_and_destroy_all(proxy_thread: ProxyServerThread) -> None:
    client = Toxiproxy()
    one = client.create(upstream=UPSTREAM, name="one")
    client.create(upstream=UPSTREAM, name="two")
    one.add_toxic(type="timeout", attributes={"timeout": 0})
    one.disable()
    assert client.reset() is True
    assert client.get_proxy("one").enabled is True
    assert one.toxics() == {}
    client.destroy_all()
    assert client.proxies() == {}


def test_populate(proxy_thread: ProxyServerThread) -> None:
    client = Toxiproxy()
    created = client.populate(
        [
            {"name": "a", "upstream": UPSTREAM, "listen": "127.0.0.1:0"},
            {"name": "b", "upstream": UPSTREAM, "listen": "127.0.0.1:0", "enabled": False},
        ]
    )
    assert [p.name for p in created] == ["a", "b"]
    assert client.get_proxy("a").enabled is True and client.get_proxy("b").enabled is False


def test_in_process_control_of_a_threaded_server(proxy_thread: ProxyServerThread) -> None:
    async def populate(server: ProxyServer) -> list[str]:
        return [p.name for p in await server.populate([{"name": "a", "upstream": UPSTREAM}])]

    assert proxy_thread.call(populate) == ["a"]
    assert set(Toxiproxy().proxies()) == {"a"}
    assert accepts(Toxiproxy().get_proxy("a").listen)
