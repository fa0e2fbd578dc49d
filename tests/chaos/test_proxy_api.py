"""Every endpoint of the Toxiproxy HTTP API and its error cases, against a server in this loop."""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable

import pytest
from proxy_helpers import EchoServer, connect, http, read_exactly, split_listen

from chaos.proxy import ProxyServer

Api = Callable[..., Awaitable[Any]]


def run(test: Callable[[ProxyServer, Api], Awaitable[None]]) -> None:
    """Run ``test(server, api)`` with a fresh server on a free port; ``api(method, path, json)``."""

    async def main() -> None:
        async with ProxyServer(port=0) as server:

            async def api(method: str, path: str, json: Any = None, **kw: Any) -> Any:
                return await http(server.url, method, path, json, **kw)

            await test(server, api)

    asyncio.run(main())


async def refused(listen: str) -> bool:
    try:
        _, writer = await connect(listen)
    except ConnectionRefusedError:
        return True
    writer.close()
    return False


UPSTREAM = "127.0.0.1:20001"  # never dialled in these tests: nothing connects through the proxies


# -- server-wide --------------------------------------------------------------------------------


def test_version_is_toxiproxy_2_shape_with_request_id() -> None:
    async def test(server: ProxyServer, api: Api) -> None:
        r = await api("GET", "/version", headers={"User-Agent": "curl/8.0"})
        assert r.status == 200
        assert r.body == b'{"version": "2.12.0"}\n'
        assert r.headers["content-type"].startswith("application/json")
        assert r.headers["x-toxiproxy-request-id"]
        other = await api("GET", "/version")
        assert other.headers["x-toxiproxy-request-id"] != r.headers["x-toxiproxy-request-id"]

    run(test)


def test_browsers_are_refused_other_clients_are_not() -> None:
    browser = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0"

    async def test(server: ProxyServer, api: Api) -> None:
        assert (await api("GET", "/proxies", headers={"User-Agent": browser})).status == 403
        assert (await api("POST", "/reset", headers={"User-Agent": browser})).status == 403
        assert (await api("GET", "/proxies", headers={"User-Agent": "Wget/2.1"})).status == 200

    run(test)


def test_unknown_routes_are_404_and_wrong_methods_405() -> None:
    async def test(server: ProxyServer, api: Api) -> None:
        for path in ("/", "/nope", "/proxies/a/b", "/proxies/a/toxics/b/c", "/proxies/"):
            r = await api("GET", path)
            assert r.status == 404, path
            assert r.body == b"404 page not found\n" and r.headers["content-type"] == "text/plain; charset=utf-8"
        # As Toxiproxy's router answers: a bare 405, no body, no Content-Type, HEAD included.
        for method, path in (("DELETE", "/proxies"), ("PUT", "/proxies/x"), ("HEAD", "/version"), ("OPTIONS", "/proxies")):
            r = await api(method, path)
            assert (r.status, r.body, "content-type" in r.headers) == (405, b"", False), (method, path)

    run(test)


# -- proxies --------------------------------------------------------------------------------------


def test_create_with_ephemeral_listen_reports_the_real_port() -> None:
    async def test(server: ProxyServer, api: Api) -> None:
        r = await api("POST", "/proxies", {"name": "db", "listen": "127.0.0.1:0", "upstream": UPSTREAM})
        assert r.status == 201
        doc = r.json()
        host, port = split_listen(doc["listen"])
        assert host == "127.0.0.1" and port > 0
        assert doc == {"name": "db", "listen": doc["listen"], "upstream": UPSTREAM, "enabled": True, "toxics": []}
        assert not await refused(doc["listen"])

    run(test)


def test_listen_is_normalised_to_the_resolved_address() -> None:
    async def test(server: ProxyServer, api: Api) -> None:
        r = await api("POST", "/proxies", {"name": "a", "listen": "localhost:0", "upstream": UPSTREAM})
        assert r.status == 201
        assert r.json()["listen"].startswith("127.0.0.1:")
        r = await api("POST", "/proxies", {"name": "b", "upstream": UPSTREAM})
        assert r.status == 201 and r.json()["listen"].startswith("127.0.0.1:")

    run(test)


@pytest.mark.parametrize(
    "body, message",
    [
        ({"upstream": UPSTREAM}, "missing required field: name"),
        ({"name": "", "upstream": UPSTREAM}, "missing required field: name"),
        ({"name": "x"}, "missing required field: upstream"),
        ({"name": "x", "upstream": ""}, "missing required field: upstream"),
    ],
)
def test_create_without_required_fields_is_400(body: dict[str, Any], message: str) -> None:
    async def test(server: ProxyServer, api: Api) -> None:
        r = await api("POST", "/proxies", body)
        assert r.status == 400
        assert r.json() == {"error": message, "status": 400}
        assert (await api("GET", "/proxies")).json() == {}

    run(test)


def test_create_twice_is_409_and_the_name_is_free_again_after_delete() -> None:
    async def test(server: ProxyServer, api: Api) -> None:
        assert (await api("POST", "/proxies", {"name": "db", "upstream": UPSTREAM})).status == 201
        r = await api("POST", "/proxies", {"name": "db", "upstream": UPSTREAM})
        assert r.status == 409
        assert r.json() == {"error": "proxy already exists", "status": 409}
        assert (await api("DELETE", "/proxies/db")).status == 204
        assert (await api("POST", "/proxies", {"name": "db", "upstream": UPSTREAM})).status == 201

    run(test)


def test_create_on_a_taken_port_is_500_with_the_os_reason() -> None:
    async def test(server: ProxyServer, api: Api) -> None:
        first = (await api("POST", "/proxies", {"name": "a", "upstream": UPSTREAM})).json()
        r = await api("POST", "/proxies", {"name": "b", "listen": first["listen"], "upstream": UPSTREAM})
        assert r.status == 500
        assert r.json()["error"] == f"listen tcp {first['listen']}: bind: address already in use"
        assert set((await api("GET", "/proxies")).json()) == {"a"}

    run(test)


def test_create_with_an_unparseable_listen_is_500() -> None:
    async def test(server: ProxyServer, api: Api) -> None:
        r = await api("POST", "/proxies", {"name": "a", "listen": "local373", "upstream": UPSTREAM})
        assert r.status == 500
        assert "missing port" in r.json()["error"]

    run(test)


def test_create_disabled_does_not_listen_and_keeps_listen_as_given() -> None:
    async def test(server: ProxyServer, api: Api) -> None:
        taken = (await api("POST", "/proxies", {"name": "probe", "upstream": UPSTREAM})).json()["listen"]
        await api("DELETE", "/proxies/probe")
        listen = taken.replace("127.0.0.1", "localhost")
        r = await api("POST", "/proxies", {"name": "db", "listen": listen, "upstream": UPSTREAM, "enabled": False})
        assert r.status == 201
        assert r.json()["listen"] == listen and r.json()["enabled"] is False
        assert await refused(taken)
        r = await api("PATCH", "/proxies/db", {"enabled": True})
        assert r.status == 200 and r.json()["enabled"] is True and r.json()["listen"] == taken
        assert not await refused(taken)

    run(test)


def test_list_and_get_show_proxies_with_their_toxics() -> None:
    async def test(server: ProxyServer, api: Api) -> None:
        assert (await api("GET", "/proxies")).json() == {}
        await api("POST", "/proxies", {"name": "a", "upstream": UPSTREAM})
        await api("POST", "/proxies", {"name": "b", "upstream": "127.0.0.1:20002"})
        await api("POST", "/proxies/a/toxics", {"type": "latency", "attributes": {"latency": 5}})
        listing = (await api("GET", "/proxies")).json()
        assert set(listing) == {"a", "b"}
        assert [t["name"] for t in listing["a"]["toxics"]] == ["latency_downstream"]
        assert listing["b"]["toxics"] == []
        one = await api("GET", "/proxies/a")
        assert one.status == 200 and one.json() == listing["a"]
        missing = await api("GET", "/proxies/zzz")
        assert missing.status == 404 and missing.json() == {"error": "proxy not found", "status": 404}

    run(test)


@pytest.mark.parametrize("method", ["PATCH", "POST"])
def test_update_disable_refuses_connections_enable_accepts_again(method: str) -> None:
    async def test(server: ProxyServer, api: Api) -> None:
        listen = (await api("POST", "/proxies", {"name": "db", "upstream": UPSTREAM})).json()["listen"]
        r = await api(method, "/proxies/db", {"enabled": False})
        assert r.status == 200
        assert r.json() == {"name": "db", "listen": listen, "upstream": UPSTREAM, "enabled": False, "toxics": []}
        assert await refused(listen)
        r = await api(method, "/proxies/db", {"enabled": True})
        assert r.json()["enabled"] is True and r.json()["listen"] == listen
        assert not await refused(listen)

    run(test)


def test_update_keeps_unspecified_fields_and_moves_on_a_new_listen() -> None:
    async def test(server: ProxyServer, api: Api) -> None:
        old = (await api("POST", "/proxies", {"name": "db", "upstream": UPSTREAM})).json()["listen"]
        await api("POST", "/proxies/db/toxics", {"type": "noop"})
        r = await api("PATCH", "/proxies/db", {"upstream": "127.0.0.1:20009"})
        assert r.json()["listen"] == old and r.json()["upstream"] == "127.0.0.1:20009" and r.json()["enabled"]
        r = await api("PATCH", "/proxies/db", {"listen": "127.0.0.1:0"})
        new = r.json()["listen"]
        assert new != old and r.json()["enabled"] is True
        assert [t["name"] for t in r.json()["toxics"]] == ["noop_downstream"]
        assert await refused(old)
        assert not await refused(new)
        r = await api("PATCH", "/proxies/db", {"name": "ignored", "unknown": 1})
        assert r.status == 200 and r.json()["name"] == "db" and r.json()["listen"] == new

    run(test)


def test_update_and_delete_unknown_proxy_are_404() -> None:
    async def test(server: ProxyServer, api: Api) -> None:
        for method, body in (("PATCH", {"enabled": False}), ("POST", {"enabled": False}), ("DELETE", None)):
            r = await api(method, "/proxies/ghost", body)
            assert r.status == 404 and r.json()["error"] == "proxy not found"

    run(test)


def test_delete_closes_the_listener() -> None:
    async def test(server: ProxyServer, api: Api) -> None:
        listen = (await api("POST", "/proxies", {"name": "db", "upstream": UPSTREAM})).json()["listen"]
        r = await api("DELETE", "/proxies/db")
        assert r.status == 204 and r.body == b""
        assert await refused(listen)
        assert (await api("DELETE", "/proxies/db")).status == 404

    run(test)


# -- populate -------------------------------------------------------------------------------------


def test_populate_creates_enabled_by_default_and_disabled_on_request() -> None:
    async def test(server: ProxyServer, api: Api) -> None:
        r = await api(
            "POST",
            "/populate",
            [
                {"name": "one", "listen": "127.0.0.1:0", "upstream": UPSTREAM},
                {"name": "two", "listen": "127.0.0.1:0", "upstream": UPSTREAM, "enabled": False},
            ],
        )
        assert r.status == 201
        proxies = r.json()["proxies"]
        assert [p["name"] for p in proxies] == ["one", "two"]
        assert [p["enabled"] for p in proxies] == [True, False]
        assert not await refused(proxies[0]["listen"])
        assert set((await api("GET", "/proxies")).json()) == {"one", "two"}

    run(test)


def test_populate_keeps_unchanged_proxies_and_replaces_changed_ones() -> None:
    async def test(server: ProxyServer, api: Api) -> None:
        one = (await api("POST", "/proxies", {"name": "one", "upstream": UPSTREAM})).json()
        await api("POST", "/proxies", {"name": "two", "upstream": UPSTREAM})
        await api("POST", "/proxies/one/toxics", {"type": "latency"})
        await api("POST", "/proxies/two/toxics", {"type": "latency"})
        same = one["listen"].replace("127.0.0.1", "localhost")  # resolves to the same address
        r = await api(
            "POST",
            "/populate",
            [
                {"name": "one", "listen": same, "upstream": UPSTREAM},
                {"name": "two", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:20002"},
            ],
        )
        assert r.status == 201
        got = {p["name"]: p for p in r.json()["proxies"]}
        assert got["one"]["listen"] == one["listen"] and len(got["one"]["toxics"]) == 1
        assert got["two"]["upstream"] == "127.0.0.1:20002" and got["two"]["toxics"] == []

    run(test)


def test_populate_checks_required_fields_before_creating_anything() -> None:
    async def test(server: ProxyServer, api: Api) -> None:
        r = await api("POST", "/populate", [{"name": "one", "upstream": UPSTREAM}, {"name": "", "listen": ""}])
        assert r.status == 400
        assert r.json()["error"] == "missing required field: name at proxy 2"
        r = await api("POST", "/populate", [{"name": "one", "upstream": UPSTREAM}, {"name": "x"}])
        assert r.json()["error"] == "missing required field: upstream at proxy 2"
        assert (await api("GET", "/proxies")).json() == {}

    run(test)


def test_populate_stops_at_an_unusable_listen_keeping_what_came_before() -> None:
    async def test(server: ProxyServer, api: Api) -> None:
        r = await api(
            "POST",
            "/populate",
            [
                {"name": "one", "listen": "127.0.0.1:0", "upstream": UPSTREAM},
                {"name": "two", "listen": "local373", "upstream": UPSTREAM},
                {"name": "three", "listen": "127.0.0.1:0", "upstream": UPSTREAM},
            ],
        )
        assert r.status == 500
        assert "missing port" in r.json()["error"]
        assert [p["name"] for p in r.json()["proxies"]] == ["one"]
        assert set((await api("GET", "/proxies")).json()) == {"one"}

    run(test)


def test_populate_needs_an_array() -> None:
    async def test(server: ProxyServer, api: Api) -> None:
        r = await api("POST", "/populate", {"name": "one", "upstream": UPSTREAM})
        assert r.status == 400 and r.json()["error"].startswith("bad request body")
        r = await api("POST", "/populate", ["one"])
        assert r.status == 400 and r.json()["error"].startswith("bad request body")

    run(test)


# -- toxics ---------------------------------------------------------------------------------------


def test_create_toxic_fills_toxiproxy_defaults() -> None:
    async def test(server: ProxyServer, api: Api) -> None:
        await api("POST", "/proxies", {"name": "db", "upstream": UPSTREAM})
        r = await api("POST", "/proxies/db/toxics", {"type": "latency", "attributes": {"latency": 100, "jitter": 10}})
        assert r.status == 200
        assert r.json() == {
            "name": "latency_downstream",
            "type": "latency",
            "stream": "downstream",
            "toxicity": 1.0,
            "attributes": {"latency": 100, "jitter": 10},
        }
        r = await api("POST", "/proxies/db/toxics", {"name": "n", "type": "noop", "stream": "UPSTREAM", "toxicity": 0.25})
        # Kept as written (Toxiproxy 2.12 does), acted on as upstream: it lists first below.
        assert r.json() == {"name": "n", "type": "noop", "stream": "UPSTREAM", "toxicity": 0.25, "attributes": {}}
        r = await api("POST", "/proxies/db/toxics", {"type": "bandwidth", "stream": "upstream", "attributes": None})
        assert r.json()["name"] == "bandwidth_upstream" and r.json()["attributes"] == {"rate": 0}
        listing = (await api("GET", "/proxies/db/toxics")).json()
        # Toxiproxy lists upstream toxics first, each direction in the order added.
        assert [t["name"] for t in listing] == ["n", "bandwidth_upstream", "latency_downstream"]
        shown = await api("GET", "/proxies/db/toxics/n")
        assert shown.status == 200 and shown.json() == listing[0]

    run(test)


@pytest.mark.parametrize(
    "kind, attributes",
    [
        ("latency", {"latency": 1, "jitter": 2}),
        ("bandwidth", {"rate": 3}),
        ("slow_close", {"delay": 4}),
        ("timeout", {"timeout": 5}),
        ("reset_peer", {"timeout": 6}),
        ("slicer", {"average_size": 7, "size_variation": 2, "delay": 9}),
        ("limit_data", {"bytes": 10}),
        ("noop", {}),
    ],
)
def test_every_toxic_type_round_trips_its_attributes(kind: str, attributes: dict[str, int]) -> None:
    async def test(server: ProxyServer, api: Api) -> None:
        await api("POST", "/proxies", {"name": "db", "upstream": UPSTREAM})
        r = await api("POST", "/proxies/db/toxics", {"type": kind, "attributes": attributes})
        assert r.status == 200 and r.json()["attributes"] == attributes
        assert (await api("GET", f"/proxies/db/toxics/{kind}_downstream")).json()["attributes"] == attributes

    run(test)


def test_toxic_names_are_unique_across_streams() -> None:
    async def test(server: ProxyServer, api: Api) -> None:
        await api("POST", "/proxies", {"name": "db", "upstream": UPSTREAM})
        assert (await api("POST", "/proxies/db/toxics", {"name": "foo", "type": "latency", "stream": "upstream"})).status == 200
        for stream in ("upstream", "downstream"):
            r = await api("POST", "/proxies/db/toxics", {"name": "foo", "type": "slow_close", "stream": stream})
            assert r.status == 409 and r.json() == {"error": "toxic already exists", "status": 409}
        # Default names include the stream, so one type can sit on both streams.
        assert (await api("POST", "/proxies/db/toxics", {"type": "latency", "stream": "upstream"})).status == 200
        assert (await api("POST", "/proxies/db/toxics", {"type": "latency", "stream": "downstream"})).status == 200
        toxics = (await api("GET", "/proxies/db/toxics")).json()
        assert [(t["name"], t["type"]) for t in toxics] == [
            ("foo", "latency"),
            ("latency_upstream", "latency"),
            ("latency_downstream", "latency"),
        ]

    run(test)


@pytest.mark.parametrize(
    "body, status, message",
    [
        ({"type": "latency", "stream": "walrustream"}, 400, "stream was invalid, can be either upstream or downstream"),
        ({"type": "latency", "stream": ""}, 400, "stream was invalid, can be either upstream or downstream"),
        ({"type": "earthquake"}, 400, "invalid toxic type"),
        ({}, 400, "invalid toxic type"),
    ],
)
def test_create_toxic_errors(body: dict[str, Any], status: int, message: str) -> None:
    async def test(server: ProxyServer, api: Api) -> None:
        await api("POST", "/proxies", {"name": "db", "upstream": UPSTREAM})
        r = await api("POST", "/proxies/db/toxics", body)
        assert r.status == status and r.json() == {"error": message, "status": status}
        assert (await api("GET", "/proxies/db/toxics")).json() == []

    run(test)


def test_toxic_endpoints_on_unknown_proxy_or_toxic_are_404() -> None:
    async def test(server: ProxyServer, api: Api) -> None:
        for method, path, body in (
            ("GET", "/proxies/ghost/toxics", None),
            ("POST", "/proxies/ghost/toxics", {"type": "noop"}),
            ("GET", "/proxies/ghost/toxics/t", None),
            ("PATCH", "/proxies/ghost/toxics/t", {"toxicity": 0.5}),
            ("DELETE", "/proxies/ghost/toxics/t", None),
        ):
            r = await api(method, path, body)
            assert (r.status, r.json()["error"]) == (404, "proxy not found"), (method, path)
        await api("POST", "/proxies", {"name": "db", "upstream": UPSTREAM})
        for method, body in (("GET", None), ("PATCH", {"toxicity": 0.5}), ("POST", {"toxicity": 0.5}), ("DELETE", None)):
            r = await api(method, "/proxies/db/toxics/t", body)
            assert (r.status, r.json()) == (404, {"error": "toxic not found", "status": 404}), method

    run(test)


@pytest.mark.parametrize("method", ["PATCH", "POST"])
def test_update_toxic_merges_attributes_and_keeps_what_is_not_given(method: str) -> None:
    async def test(server: ProxyServer, api: Api) -> None:
        await api("POST", "/proxies", {"name": "db", "upstream": UPSTREAM})
        await api("POST", "/proxies/db/toxics", {"type": "latency", "attributes": {"latency": 100, "jitter": 10}})
        r = await api(method, "/proxies/db/toxics/latency_downstream", {"toxicity": 0.5, "attributes": {"latency": 1000}})
        assert r.status == 200
        assert (r.json()["toxicity"], r.json()["attributes"]) == (0.5, {"latency": 1000, "jitter": 10})
        r = await api(method, "/proxies/db/toxics/latency_downstream", {"attributes": {"latency": 500}})
        assert (r.json()["toxicity"], r.json()["attributes"]) == (0.5, {"latency": 500, "jitter": 10})
        # Name, type and stream are not changed by an update.
        r = await api(method, "/proxies/db/toxics/latency_downstream", {"name": "x", "type": "noop", "stream": "upstream"})
        assert r.json() == {
            "name": "latency_downstream",
            "type": "latency",
            "stream": "downstream",
            "toxicity": 0.5,
            "attributes": {"latency": 500, "jitter": 10},
        }
        assert (await api("GET", "/proxies/db/toxics/latency_downstream")).json() == r.json()

    run(test)


def test_delete_toxic_is_204_then_404() -> None:
    async def test(server: ProxyServer, api: Api) -> None:
        await api("POST", "/proxies", {"name": "db", "upstream": UPSTREAM})
        await api("POST", "/proxies/db/toxics", {"type": "latency"})
        r = await api("DELETE", "/proxies/db/toxics/latency_downstream")
        assert r.status == 204 and r.body == b""
        assert (await api("GET", "/proxies/db/toxics")).json() == []
        assert (await api("DELETE", "/proxies/db/toxics/latency_downstream")).status == 404

    run(test)


def test_reset_enables_every_proxy_and_removes_every_toxic() -> None:
    async def test(server: ProxyServer, api: Api) -> None:
        listen = (await api("POST", "/proxies", {"name": "a", "upstream": UPSTREAM})).json()["listen"]
        await api("POST", "/proxies", {"name": "b", "upstream": UPSTREAM})
        await api("POST", "/proxies/a/toxics", {"type": "latency", "attributes": {"latency": 100}})
        await api("POST", "/proxies/b/toxics", {"type": "timeout", "stream": "upstream"})
        await api("PATCH", "/proxies/a", {"enabled": False})
        r = await api("POST", "/reset")
        assert r.status == 204 and r.body == b""
        listing = (await api("GET", "/proxies")).json()
        assert all(p["enabled"] and p["toxics"] == [] for p in listing.values())
        assert listing["a"]["listen"] == listen
        assert not await refused(listen)

    run(test)


def test_metrics_count_bytes_per_proxy_and_direction() -> None:
    async def test(server: ProxyServer, api: Api) -> None:
        async with EchoServer() as echo:
            listen = (await api("POST", "/proxies", {"name": "echo", "upstream": echo.address})).json()["listen"]
            reader, writer = await connect(listen)
            writer.write(b"x" * 1000)
            assert await read_exactly(reader, 1000) == b"x" * 1000
            writer.close()
            r = await api("GET", "/metrics")
            assert r.status == 200 and r.headers["content-type"].startswith("text/plain")
            text = r.body.decode()
            for metric in ("received", "sent"):
                for direction in ("upstream", "downstream"):
                    line = next(
                        ln
                        for ln in text.splitlines()
                        if ln.startswith(f"toxiproxy_proxy_{metric}_bytes_total{{")
                        and f'direction="{direction}"' in ln
                        and 'proxy="echo"' in ln
                    )
                    assert f'listener="{listen}"' in line and f'upstream="{echo.address}"' in line
                    assert float(line.rsplit(" ", 1)[1]) == 1000.0
            assert server.bytes_total("echo", "downstream") == 1000

    run(test)
