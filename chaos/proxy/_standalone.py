"""`squall proxy`: the server on its own, proxies from a config file, until Ctrl-C."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path
from typing import Any

from chaos.proxy._collection import ProxySpec
from chaos.proxy._errors import ApiError
from chaos.proxy._server import ProxyServer, report_out_of_files
from sim.errors import BadInput


_JSON_NAMES = {dict: "object", str: "string", int: "number", float: "number", bool: "boolean", type(None): "null"}


def load_config(path: Path) -> list[ProxySpec]:
    """A Toxiproxy ``-config`` file: a JSON array of ``{name, upstream, listen?, enabled?}``."""
    if path.exists() and not path.is_file():  # a directory, a device, a pipe: reading it could never end
        raise BadInput(f"--config {path}: not a regular file; pass a JSON file listing proxies")
    try:
        if path.stat().st_size > 10_000_000:
            raise BadInput(f"--config {path}: {path.stat().st_size:,} bytes is not a proxy list (at most 10,000,000); pass the right file")
        doc: Any = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BadInput(f"--config {path}: no such file; pass a JSON file listing proxies") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"--config {path}: cannot read it ({exc}); pass a readable JSON file") from None
    except RecursionError:
        raise BadInput(f"--config {path}: nested too deeply to be a proxy list; pass a JSON array of proxies") from None
    except ValueError as exc:
        raise BadInput(f"--config {path}: not valid JSON ({exc}); fix the syntax at that position") from None
    if not isinstance(doc, list):
        raise BadInput(
            f'--config {path}: expected a JSON array of proxies like [{{"name": "mqtt", "upstream": '
            f'"127.0.0.1:1883", "listen": "127.0.0.1:21883"}}], got a JSON {_JSON_NAMES.get(type(doc), type(doc).__name__)}'
        )
    specs = []
    for i, entry in enumerate(doc, start=1):
        where = f"--config {path}: proxy {i}"
        if not isinstance(entry, dict):
            raise BadInput(f"{where}: expected a JSON object with name and upstream, got {entry!r}")
        for key in ("name", "upstream"):
            if not isinstance(entry.get(key), str) or not entry[key]:
                raise BadInput(f"{where}: missing required field {key!r}; add it as a non-empty string")
        listen = entry.get("listen", "127.0.0.1:0")
        if not isinstance(listen, str):
            raise BadInput(f"{where}: listen must be a string like \"127.0.0.1:21883\", got {listen!r}")
        enabled = entry.get("enabled", True)
        if not isinstance(enabled, bool):
            raise BadInput(f"{where}: enabled must be true or false, got {enabled!r}")
        specs.append(ProxySpec(name=entry["name"], upstream=entry["upstream"], listen=listen or "127.0.0.1:0", enabled=enabled))
    names = [s.name for s in specs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise BadInput(f"--config {path}: proxy name {dupes[0]!r} appears twice; give each proxy its own name")
    return specs


async def serve(host: str, port: int, specs: list[ProxySpec], *, config: Path | None = None) -> None:
    """Run until SIGINT or SIGTERM, then close every proxy."""
    report_out_of_files(asyncio.get_running_loop())
    server = ProxyServer(host, port)
    try:
        await server.start()
    except OSError as exc:
        raise BadInput(f"cannot listen on {host}:{port}: {exc.strerror or exc}; choose another --port") from None
    try:
        try:
            proxies = await server.populate(list(specs))
        except ApiError as exc:
            raise BadInput(f"--config {config}: {exc.message}; fix that proxy's listen or upstream") from None
        print(f"squall proxy: Toxiproxy API on {server.url}", file=sys.stderr)
        for proxy in proxies:
            state = "" if proxy.enabled else " (disabled)"
            print(f"squall proxy: {proxy.name}: {proxy.listen} -> {proxy.upstream}{state}", file=sys.stderr)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        print("squall proxy: stopping", file=sys.stderr)
    finally:
        await server.stop()


def run(host: str = "127.0.0.1", port: int = 8474, config: Path | None = None) -> int:
    specs = load_config(config) if config is not None else []
    asyncio.run(serve(host, port, specs, config=config))
    return 0
