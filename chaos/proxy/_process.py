"""ProxyProcess: the proxy server in a process of its own, as Toxiproxy runs.

A proxy sharing an event loop with the traffic it carries takes its relaying out of that
loop's time: on a saturated loop the relay costs every message it carries, and a latency
toxic's timers fire late whenever the fleet is busy. In its own process the proxy relays on
another core and keeps its own time. The chaos runner starts one like this; it is driven
over the Toxiproxy HTTP API at ``url`` like any other.

The child exits when its parent closes its standard input (or dies), so no proxy outlives
the run that started it.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import IO, Any

_READY_TIMEOUT = 60.0


class ProxyProcess:
    """``with ProxyProcess() as proxy: ToxiproxyAPI(proxy.url)``; also ``async with``."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.url = ""
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self) -> "ProxyProcess":
        env = dict(os.environ)
        # The child imports squall the way this process did, installed or from a checkout.
        root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
        # stderr to a file, not a pipe: a pipe nobody reads fills up and stalls the proxy.
        self._stderr = tempfile.TemporaryFile()
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "chaos.proxy._child", "--host", self.host],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=env,
            # A group of its own: Ctrl-C on the run must not kill the proxy under the runner,
            # which still has toxics to delete; the runner stops it by closing its stdin.
            process_group=0,
        )
        line = _read_line(self._proc.stdout, _READY_TIMEOUT)  # type: ignore[arg-type]
        try:
            self.url = json.loads(line)["url"]
        except (ValueError, KeyError, TypeError):
            err = self._stop_and_collect()
            last = err.strip().splitlines()[-1] if err.strip() else "no output"
            raise RuntimeError(f"the proxy process did not start ({last}); run `squall proxy --port 0` to see why") from None
        return self

    def stop(self) -> None:
        if self._proc is not None:
            self._stop_and_collect()

    def _stop_and_collect(self) -> str:
        proc, self._proc = self._proc, None
        assert proc is not None
        try:
            proc.stdin.close()  # type: ignore[union-attr]  # the child's signal to stop
        except OSError:
            pass
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()  # type: ignore[union-attr]
        err, self._stderr = self._stderr, None
        assert err is not None
        err.seek(0)
        text = err.read().decode(errors="replace")
        err.close()
        return text

    def __enter__(self) -> "ProxyProcess":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> "ProxyProcess":
        return await asyncio.to_thread(self.start)

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self.stop)


def _read_line(stream: IO[bytes], timeout: float) -> str:
    """One line from the child, or "" when it says nothing in time (it hung or died)."""
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    return got[0].decode(errors="replace") if got else ""


def _main(argv: list[str] | None = None) -> int:
    """The child: serve on an ephemeral port, say where, stop when stdin closes."""
    import argparse

    from chaos.proxy._server import ProxyServer, report_out_of_files

    parser = argparse.ArgumentParser(prog="python -m chaos.proxy._child")
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args(argv)

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        report_out_of_files(loop, "proxy process")
        stop = asyncio.Event()

        def wait_for_parent() -> None:
            sys.stdin.buffer.read()
            loop.call_soon_threadsafe(stop.set)

        async with ProxyServer(args.host, 0) as server:
            threading.Thread(target=wait_for_parent, daemon=True).start()
            out: Any = sys.stdout
            out.write(json.dumps({"url": server.url, "pid": os.getpid()}) + "\n")
            out.flush()
            await stop.wait()

    asyncio.run(serve())
    return 0
