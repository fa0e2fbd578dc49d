"""`--broker` is probed before a chaos run: a real broker passes, anything else is one line at once."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import threading
import time

import pytest

from chaos._preflight import (
    broker_address,
    probe_broker,
    probe_toxiproxy,
    upstream_address,
)
from chaos.proxy import ProxyProcess
from sim.errors import BadInput
from system.broker import EmbeddedBroker


def test_a_real_broker_answers_the_probe():
    async def main() -> None:
        async with EmbeddedBroker("127.0.0.1", 0) as broker:
            await asyncio.to_thread(probe_broker, f"mqtt://127.0.0.1:{broker.port}")

    asyncio.run(main())


def test_mosquitto_answers_the_probe(mosquitto_path, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    conf = tmp_path / "m.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n")
    proc = subprocess.Popen([mosquitto_path, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):  # poll until it listens
            assert proc.poll() is None, "mosquitto exited at start"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        probe_broker(f"mqtt://user:secret@127.0.0.1:{port}")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_a_listener_that_never_answers_is_refused_within_the_timeout():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        url = f"mqtt://127.0.0.1:{server.getsockname()[1]}"
        with pytest.raises(BadInput, match=r"--broker mqtt://127\.0\.0\.1:\d+: no answer within 0\.5 s"):
            probe_broker(url, timeout=0.5)


def test_a_listener_that_is_not_mqtt_is_refused():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()

        def http() -> None:
            conn, _ = server.accept()
            with conn:
                conn.recv(100)
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")

        threading.Thread(target=http, daemon=True).start()
        with pytest.raises(BadInput, match="does not answer MQTT"):
            probe_broker(f"mqtt://127.0.0.1:{server.getsockname()[1]}", timeout=5)


@pytest.mark.parametrize(
    "url, port",
    [("mqtt://127.0.0.1:1883", 1883), ("mqtt://localhost", 1883), ("mqtt://u:p@[::1]:2000", 2000), ("mqtt://broker:1884/", 1884)],
)
def test_good_urls_parse(url, port):
    assert broker_address(url)[1] == port


@pytest.mark.parametrize("url", ["1883", "mqtt://", "mqtt://:1883", "mqtt://h:0", "mqtt://h:70000", "mqtt://h:x", "http://h:1883", "mqtt://h:1883/topic", "mqtt://h?x=1"])
def test_bad_urls_are_bad_input(url):
    with pytest.raises(BadInput, match="--broker"):
        broker_address(url)


@pytest.mark.parametrize("text", ["nowhere", ":1883", "h:", "h:0", "h:99999", "h:port"])
def test_bad_upstreams_are_bad_input(text):
    with pytest.raises(BadInput, match="--upstream"):
        upstream_address(text)


def test_squalls_own_proxy_answers_the_toxiproxy_probe():
    with ProxyProcess() as proxy:
        probe_toxiproxy(proxy.url)


@pytest.mark.parametrize("url, message", [("garbage", "give the API's URL"), ("http://127.0.0.1:99999", "give the API's URL"), ("http://127.0.0.1:{closed}", "cannot reach it")])
def test_a_toxiproxy_url_that_is_wrong_is_bad_input(url, message):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    with pytest.raises(BadInput, match=f"TOXIPROXY_URL=.*{message}"):
        probe_toxiproxy(url.replace("{closed}", str(closed)))
