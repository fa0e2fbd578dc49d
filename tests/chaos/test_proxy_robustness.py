"""Bad requests, big requests, busy proxies: the server answers and carries on."""

from __future__ import annotations

import asyncio
import concurrent.futures
import random
import re
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from proxy_helpers import TIMEOUT, EchoServer, connect, http, read_exactly

from chaos.proxy import Proxy, ProxyServer

UPSTREAM = "127.0.0.1:20001"


async def raw(server: ProxyServer, data: bytes) -> bytes:
    """Send bytes as they are; read until the server closes."""
    reader, writer = await connect(f"127.0.0.1:{server.port}")
    writer.write(data)
    try:
        return await asyncio.wait_for(reader.read(), TIMEOUT)
    finally:
        writer.close()


async def still_serving(server: ProxyServer) -> bool:
    return (await http(server.url, "GET", "/version")).status == 200


# -- malformed and unexpected bodies --------------------------------------------------------------


BODY_ENDPOINTS = [
    ("POST", "/proxies"),
    ("POST", "/populate"),
    ("PATCH", "/proxies/db"),
    ("POST", "/proxies/db/toxics"),
    ("PATCH", "/proxies/db/toxics/latency_downstream"),
]


@pytest.mark.parametrize("method, path", BODY_ENDPOINTS)
@pytest.mark.parametrize("body", [b"{not json", b"", b"   ", b'{"name": "x",}', b"\xff\xfe\x00garbage", b"[1, 2"])
def test_malformed_json_is_400_bad_request_body(method: str, path: str, body: bytes) -> None:
    async def main() -> None:
        async with ProxyServer(port=0) as server:
            await server.create("db", UPSTREAM)
            server.get("db").add_toxic({"type": "latency"})
            r = await http(server.url, method, path, body=body)
            assert r.status == 400
            assert r.json()["status"] == 400 and r.json()["error"].startswith("bad request body")
            assert list(server.proxies()) == ["db"] and len(server.get("db").toxics()) == 1
            assert await still_serving(server)

    asyncio.run(main())


@pytest.mark.parametrize(
    "path, doc",
    [
        ("/proxies", {"name": 5, "upstream": UPSTREAM}),
        ("/proxies", {"name": "x", "upstream": UPSTREAM, "enabled": "yes"}),
        ("/proxies", {"name": "x", "upstream": ["a"]}),
        ("/proxies", ["x"]),
        ("/proxies", "x"),
        ("/proxies/db/toxics", {"type": "latency", "toxicity": "high"}),
        ("/proxies/db/toxics", {"type": "latency", "toxicity": True}),
        ("/proxies/db/toxics", {"type": "latency", "attributes": [1]}),
        ("/proxies/db/toxics", {"type": "latency", "attributes": {"latency": "slow"}}),
        ("/proxies/db/toxics", {"type": "latency", "attributes": {"latency": 100.0}}),
        ("/proxies/db/toxics", {"type": "latency", "attributes": {"latency": 2**63}}),
        ("/proxies/db/toxics", {"type": 3}),
        ("/proxies/db/toxics/t", {"toxicity": "x"}),
        ("/proxies/db/toxics/t", {"attributes": {"jitter": 1.5}}),
        ("/proxies/db/toxics/t", {"attributes": "none"}),
    ],
)
def test_fields_of_the_wrong_type_are_400(path: str, doc: Any) -> None:
    async def main() -> None:
        async with ProxyServer(port=0) as server:
            await server.create("db", UPSTREAM)
            server.get("db").add_toxic({"name": "t", "type": "latency", "attributes": {"latency": 1}})
            r = await http(server.url, "POST", path, doc)
            assert r.status == 400, r.body
            assert r.json()["error"].startswith("bad request body: ")
            assert len(r.json()["error"].splitlines()) == 1
            assert [t.to_json() for t in server.get("db").toxics()] == [
                {"name": "t", "type": "latency", "stream": "downstream", "toxicity": 1.0, "attributes": {"latency": 1, "jitter": 0}}
            ]

    asyncio.run(main())


def test_unknown_fields_are_ignored() -> None:
    async def main() -> None:
        async with ProxyServer(port=0) as server:
            r = await http(server.url, "POST", "/proxies", {"name": "db", "upstream": UPSTREAM, "colour": "red", "toxics": 1})
            assert r.status == 201 and "colour" not in r.json()
            r = await http(
                server.url,
                "POST",
                "/proxies/db/toxics",
                {"type": "latency", "severity": 11, "attributes": {"latency": 5, "wobble": True}},
            )
            assert r.status == 200 and r.json()["attributes"] == {"latency": 5, "jitter": 0}

    asyncio.run(main())


# -- transport-level trouble ----------------------------------------------------------------------


def test_huge_body_is_413_and_the_server_carries_on() -> None:
    async def main() -> None:
        async with ProxyServer(port=0) as server:
            big = b'{"name": "' + b"x" * (2 << 20) + b'", "upstream": "a:1"}'
            r = await http(server.url, "POST", "/proxies", body=big)
            assert r.status == 413 and r.json()["status"] == 413
            chunked = (
                b"POST /proxies HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                + b"".join(b"10000\r\n" + b"y" * 0x10000 + b"\r\n" for _ in range(20))
                + b"0\r\n\r\n"
            )
            assert (await raw(server, chunked)).startswith(b"HTTP/1.1 413 ")
            assert server.proxies() == {}
            assert await still_serving(server)

    asyncio.run(main())


@pytest.mark.parametrize(
    "junk",
    [b"HELLO\r\n\r\n", b"GET /version HTTP/1.1\r\n\r\n", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\0" * 40, b"GET / HTTP/1.1\r\n" + b"X-Long: " + b"a" * 100_000 + b"\r\n\r\n"],
)
def test_garbage_requests_get_an_error_and_the_server_carries_on(junk: bytes) -> None:
    async def main() -> None:
        async with ProxyServer(port=0) as server:
            answer = await raw(server, junk)
            assert answer == b"" or answer.startswith(b"HTTP/1.1 4")
            assert await still_serving(server)

    asyncio.run(main())


def test_keep_alive_serves_several_requests_on_one_connection() -> None:
    async def main() -> None:
        async with ProxyServer(port=0) as server:
            request = b"GET /version HTTP/1.1\r\nHost: x\r\n\r\n"
            last = b"GET /proxies HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            answer = await raw(server, request * 3 + last)
            assert answer.count(b"HTTP/1.1 200 OK") == 4
            assert answer.endswith(b"\r\n\r\n{}")

    asyncio.run(main())


def test_a_client_vanishing_mid_request_harms_nobody() -> None:
    async def main() -> None:
        async with ProxyServer(port=0) as server:
            for partial in (b"POST /proxies HTTP/1.1\r\nContent-Length: 100\r\n\r\n{", b"GET /vers"):
                _, writer = await connect(f"127.0.0.1:{server.port}")
                writer.write(partial)
                await writer.drain()
                writer.close()
            assert await still_serving(server)

    asyncio.run(main())


# -- busy proxies ---------------------------------------------------------------------------------


async def stream_through(proxy: Proxy, payload: bytes, chunk: int = 4096) -> bytes:
    """Send payload through the proxy to the echo server while reading the echo back."""
    reader, writer = await connect(proxy.listen)

    async def send() -> None:
        for i in range(0, len(payload), chunk):
            writer.write(payload[i : i + chunk])
            await writer.drain()

    sender = asyncio.create_task(send())
    try:
        return await read_exactly(reader, len(payload))
    finally:
        await sender
        writer.close()


def test_concurrent_api_calls_while_traffic_flows() -> None:
    async def main() -> None:
        async with EchoServer() as echo, ProxyServer(port=0) as server:
            proxy = await server.create("echo", echo.address)
            proxy.add_toxic({"name": "base", "type": "bandwidth", "attributes": {"rate": 10_000}})
            payload = random.Random(5).randbytes(2 << 20)
            traffic = asyncio.create_task(stream_through(proxy, payload))
            await asyncio.wait_for(_until_bytes(server, 64 * 1024), TIMEOUT)

            async def churn(i: int) -> list[int]:
                base = f"{server.url}"
                name = f"t{i}"
                stream = "upstream" if i % 2 else "downstream"
                kind, attrs = [
                    ("latency", {"latency": 2, "jitter": 1}),
                    ("slicer", {"average_size": 512, "size_variation": 100}),
                    ("bandwidth", {"rate": 100_000}),
                    ("noop", {}),
                ][i % 4]
                statuses = []
                for method, path, body in (
                    ("POST", "/proxies/echo/toxics", {"name": name, "type": kind, "stream": stream, "attributes": attrs}),
                    ("GET", "/proxies", None),
                    ("PATCH", f"/proxies/echo/toxics/{name}", {"toxicity": 0.5}),
                    ("GET", f"/proxies/echo/toxics/{name}", None),
                    ("GET", "/metrics", None),
                    ("DELETE", f"/proxies/echo/toxics/{name}", None),
                ):
                    statuses.append((await http(base, method, path, body)).status)
                return statuses

            results = await asyncio.gather(*(churn(i) for i in range(24)))
            assert all(s == [200, 200, 200, 200, 200, 204] for s in results), results
            assert await asyncio.wait_for(traffic, 60) == payload
            assert [t.name for t in proxy.toxics()] == ["base"]

    asyncio.run(main())


def test_removing_a_toxic_behind_a_stalled_one_does_not_hang() -> None:
    """Toxiproxy once hung here: latency upstream, then a timeout (0) swallowing everything."""

    async def main() -> None:
        async with EchoServer() as echo, ProxyServer(port=0) as server:
            proxy = await server.create("echo", echo.address)
            proxy.add_toxic({"name": "might_block", "type": "latency", "stream": "upstream", "attributes": {"latency": 10}})
            proxy.add_toxic({"name": "timeout", "type": "timeout", "stream": "upstream", "attributes": {"timeout": 0}})
            reader, writer = await connect(proxy.listen)
            for _ in range(50):
                writer.write(b"hello" * 1000)
            await writer.drain()
            r = await http(server.url, "DELETE", "/proxies/echo/toxics/might_block")
            assert r.status == 204
            assert echo.reads == []
            writer.close()

    asyncio.run(asyncio.wait_for(main(), 30))


def test_removing_toxics_under_load_keeps_the_stream_intact() -> None:
    async def main() -> None:
        async with EchoServer() as echo, ProxyServer(port=0) as server:
            proxy = await server.create("echo", echo.address)
            for stream in ("upstream", "downstream"):
                proxy.add_toxic({"type": "latency", "stream": stream, "attributes": {"latency": 50, "jitter": 20}})
                proxy.add_toxic({"type": "slicer", "stream": stream, "attributes": {"average_size": 700, "delay": 10}})
                proxy.add_toxic({"type": "bandwidth", "stream": stream, "attributes": {"rate": 2000}})
            payload = random.Random(9).randbytes(1 << 20)
            traffic = asyncio.create_task(stream_through(proxy, payload))
            await asyncio.wait_for(_until_bytes(server, 64 * 1024), TIMEOUT)
            for toxic in proxy.toxics():
                r = await asyncio.wait_for(http(server.url, "DELETE", f"/proxies/echo/toxics/{toxic.name}"), TIMEOUT)
                assert r.status == 204
            assert await asyncio.wait_for(traffic, 60) == payload

    asyncio.run(main())


async def _until_bytes(server: ProxyServer, n: int) -> None:
    while server.bytes_total("echo", "downstream") < n:
        await asyncio.sleep(0.01)


# -- a property: byte-preserving toxics never corrupt the stream ----------------------------------

PRESERVING = st.one_of(
    st.builds(lambda: {"type": "noop"}),
    st.builds(lambda ms, j: {"type": "latency", "attributes": {"latency": ms, "jitter": j}}, st.integers(0, 20), st.integers(0, 10)),
    st.builds(
        lambda a, v, d: {"type": "slicer", "attributes": {"average_size": a, "size_variation": v, "delay": d}},
        st.integers(1, 2000),
        st.integers(0, 500),
        st.integers(0, 200),
    ),
    st.builds(lambda r: {"type": "bandwidth", "attributes": {"rate": r}}, st.integers(5_000, 100_000)),
    st.builds(lambda: {"type": "slow_close", "attributes": {"delay": 1}}),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    toxics=st.lists(st.tuples(PRESERVING, st.sampled_from(["upstream", "downstream"])), max_size=5),
    churn=st.lists(st.integers(0, 4), max_size=3),
    size=st.integers(1, 200_000),
    seed=st.integers(0, 2**16),
)
def test_byte_preserving_toxics_keep_every_byte_in_order(
    toxics: list[tuple[dict[str, Any], str]], churn: list[int], size: int, seed: int
) -> None:
    async def main() -> None:
        async with EchoServer() as echo, ProxyServer(port=0, rng=random.Random(seed)) as server:
            proxy = await server.create("echo", echo.address)
            for i, (doc, stream) in enumerate(toxics):
                proxy.add_toxic({**doc, "name": f"t{i}", "stream": stream})
            payload = random.Random(seed).randbytes(size)
            traffic = asyncio.create_task(stream_through(proxy, payload))
            for index in churn:  # remove some toxics while the bytes are in flight
                await asyncio.sleep(0)
                names = [t.name for t in proxy.toxics()]
                if names:
                    proxy.remove_toxic(names[index % len(names)])
            assert await asyncio.wait_for(traffic, 60) == payload

    asyncio.run(main())


# -- hostile input Toxiproxy answers with 400 or 405, and running out of descriptors ------------------


@pytest.mark.parametrize(
    "body",
    [b"[" * 50_000 + b"]" * 50_000, b'{"a":' * 50_000 + b"1" + b"}" * 50_000, b"NaN", b'{"name": "x", "upstream": Infinity}'],
    ids=["deep-arrays", "deep-objects", "nan", "infinity"],
)
@pytest.mark.parametrize("method, path", BODY_ENDPOINTS)
def test_deep_nesting_and_non_json_numbers_are_400_not_500(method: str, path: str, body: bytes) -> None:
    async def main() -> None:
        async with ProxyServer(port=0) as server:
            await server.create("db", UPSTREAM)
            server.get("db").add_toxic({"type": "latency"})
            r = await http(server.url, method, path, body=body)
            assert r.status == 400, r
            assert r.json()["error"].startswith("bad request body")
            assert r.headers["content-type"] == "text/plain; charset=utf-8" or path == "/populate"
            assert await still_serving(server)

    asyncio.run(main())


def test_head_and_other_methods_get_a_bare_405_and_the_connection_carries_on() -> None:
    async def main() -> None:
        async with ProxyServer(port=0) as server:
            head = b"HEAD /version HTTP/1.1\r\nHost: x\r\n\r\n"
            put = b"PUT /proxies HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
            last = b"GET /proxies HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            answer = await raw(server, head + put + last)
            first, second, third = answer.split(b"HTTP/1.1 ")[1:]
            assert first.startswith(b"405 ") and b"content-type" not in first.lower() and b"content-length" not in first.lower()
            assert second.startswith(b"405 ") and b"content-length: 0\r\n" in second.lower() and second.endswith(b"\r\n\r\n")
            assert third.startswith(b"200 ") and third.endswith(b"\r\n\r\n{}")

    asyncio.run(main())


def test_out_of_file_descriptors_is_a_clear_error_and_the_server_recovers(tmp_path: Path) -> None:
    limit = 64
    log = tmp_path / "stderr.txt"
    with log.open("w") as err_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sim.cli", "proxy", "--port", "0"],
            stderr=err_file,
            preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit)),
        )
    try:
        url = _api_url(log)
        with requests.Session() as api:  # one keep-alive connection: the API never needs a second descriptor
            for i in range(limit):  # each proxy holds a listening socket: the limit comes before i reaches it
                r = api.post(f"{url}/proxies", json={"name": f"p{i}", "upstream": UPSTREAM}, timeout=TIMEOUT)
                if r.status_code != 201:
                    break
            else:
                pytest.fail(f"{limit} proxies fit under RLIMIT_NOFILE={limit}")
            assert r.status_code == 500
            error = r.json()["error"]
            assert "too many open files (RLIMIT_NOFILE=64)" in error and "ulimit -n" in error and "\n" not in error
            assert f"p{i}" not in api.get(f"{url}/proxies", timeout=TIMEOUT).json()  # nothing half-made
            for j in range(3):
                assert api.delete(f"{url}/proxies/p{j}", timeout=TIMEOUT).status_code == 204
            again = api.post(f"{url}/proxies", json={"name": "again", "upstream": UPSTREAM}, timeout=TIMEOUT)
            assert again.status_code == 201, again.text
        # A client that arrives while every descriptor is taken waits, and is served once one is free.
        with requests.Session() as api:
            for i in range(limit):
                if api.post(f"{url}/proxies", json={"name": f"q{i}", "upstream": UPSTREAM}, timeout=TIMEOUT).status_code != 201:
                    break
            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                late = pool.submit(requests.get, f"{url}/version", timeout=TIMEOUT)
                assert api.delete(f"{url}/proxies/q0", timeout=TIMEOUT).status_code == 204
                assert late.result().status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    err = log.read_text()
    assert "Traceback" not in err, err
    assert all(line.startswith("squall proxy: ") for line in err.splitlines()), err


def _api_url(log: Path) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = re.search(r"Toxiproxy API on (http://\S+)", log.read_text())
        if found:
            return found.group(1)
        time.sleep(0.05)
    raise AssertionError(f"squall proxy did not start: {log.read_text()[-500:]}")
