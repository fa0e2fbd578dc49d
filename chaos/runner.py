"""The chaos runner: a scenario's broker and fleet for real, on loopback, through the proxy.

Every service reaches the broker through its own proxy (Toxiproxy's HTTP API: squall's
proxy in a process of its own, or a real Toxiproxy at ``TOXIPROXY_URL``), so a fault on one device's link
touches only that device, as in the simulated world. The scenario's schedule is scaled to
the chaos duration. What a proxy cannot do is mapped to the nearest thing it can:

- toxics on ``broker:1883``: on every service's proxy; on ``a<->broker``: on a's proxy.
- ``down`` and ``partition``: the affected proxies disabled (a proxy cannot hold bytes the
  way a partition does, so a partition is harsher here: connections close).
- ``crash`` of the broker: the broker stopped and started again for real; of a service:
  its task cancelled and its entry point run again.
- ``skew``: not possible for real; recorded as skipped.

User services (``[[services]]``) run on this loop from their ``entry``, or, with ``command``,
as real processes (sim/services.py lists the placeholders and environment variables); a crash
kills the process (SIGKILL) and the restart starts it again. A process's output goes to
``<data>/<host>/output.log``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import psutil

from chaos._preflight import preflight
from chaos.proxy import ProxyProcess, ToxiproxyAPI
from sim._plan import Service, plan
from sim.checks import RunFacts, metrics, run_checks, run_custom_checks
from sim.errors import BadInput
from sim.faults.schedule import (
    CrashFault,
    DownFault,
    PartitionFault,
    Schedule,
    SkewFault,
    TimedFault,
    ToxicFault,
)
from sim.history import History
from sim.runner import RunOutcome, build_report
from sim.scenario import Scenario

log = logging.getLogger("chaos.runner")
BROKER = "broker"
# How late a wall-clock timer may fire on a loaded machine before a timing check calls it a bug
# (virtual time needs none: sim runs judge to the millisecond).
_TIMING_SLACK = 0.5


@dataclass
class _Running:
    service: Service
    task: asyncio.Task[None] | None = None


class ChaosRun:
    def __init__(self, scenario: Scenario, seed: int, *, broker_url: str | None, toxiproxy_url: str | None, upstream: str | None, duration: float | None,
                 scenario_ref: str | None = None, progress: Callable[[float, int], None] | None = None) -> None:
        self.scenario = scenario
        self.scenario_ref = scenario_ref or scenario.name
        self.progress = progress
        self.seed = seed
        self.duration = duration or scenario.chaos.duration
        self.scale = self.duration / scenario.duration
        self.external_broker = broker_url
        self.toxiproxy_url = toxiproxy_url
        self.upstream_override = upstream
        self.history: History | None = None
        self.skipped: list[str] = []

    def scaled_schedule(self) -> Schedule:
        s = self.scale
        return Schedule(faults=[f.model_copy(update={"at": round(f.at * s, 3), "duration": None if f.duration is None else max(0.2, round(f.duration * s, 3))}) for f in self.scenario.schedule(self.seed).faults])

    async def run(self) -> RunOutcome:
        from system.broker import EmbeddedBroker

        loop = asyncio.get_running_loop()
        origin = loop.time()
        history = self.history = History(clock=loop.time, origin=origin)
        broker: EmbeddedBroker | None = None
        if self.external_broker is None:
            broker = EmbeddedBroker(host="127.0.0.1", port=0, flavor=self.scenario.broker.flavor, observer=history.wire if self.scenario.judges_wire else None)
            await broker.start()
            broker_addr = f"127.0.0.1:{broker.port}"
        else:
            broker_addr = self.external_broker.split("://", 1)[-1].rsplit("@", 1)[-1]
        upstream = self.upstream_override or broker_addr

        proxy_server = None
        if self.toxiproxy_url is None:
            # Its own process, as Toxiproxy runs: relaying on this loop would cost the fleet's
            # messages and make latency toxics late whenever the fleet is busy.
            proxy_server = ProxyProcess()
            await asyncio.to_thread(proxy_server.start)
            api = ToxiproxyAPI(proxy_server.url)
        else:
            api = ToxiproxyAPI(self.toxiproxy_url)

        listen_host = os.environ.get("SQUALL_PROXY_LISTEN", "127.0.0.1")
        ports = _port_range(os.environ.get("SQUALL_PROXY_PORTS"))
        urls: dict[str, str] = {}
        services: list[Service] = []
        try:
            names = [s.name for s in plan(self.scenario, self.seed, "mqtt://unused:1", history.note, "chaos")]
            if ports is not None and len(ports) < len(names):
                raise BadInput(f"SQUALL_PROXY_PORTS has {len(ports)} ports but this scenario needs {len(names)} proxies")
            for i, name in enumerate(names):
                await api.delete(name)
                listen = await api.create(name, f"{listen_host}:{ports[i] if ports else 0}", upstream)
                port = int(listen.rsplit(":", 1)[1])
                urls[name] = f"mqtt://127.0.0.1:{port}"
            services = plan(self.scenario, self.seed, lambda name: urls[name], history.note, "chaos")  # type: ignore[arg-type]
            running = {s.name: _Running(s) for s in services}
            data_root = Path(os.environ.get("SQUALL_CHAOS_DATA", "")) if os.environ.get("SQUALL_CHAOS_DATA") else None
            import tempfile

            with tempfile.TemporaryDirectory(prefix="squall-chaos-") as tmp:
                root = data_root or Path(tmp)

                def start(name: str) -> None:
                    r = running[name]
                    disk = root / name
                    disk.mkdir(parents=True, exist_ok=True)
                    user = r.service.user
                    if user is not None and user.command is not None:
                        r.task = asyncio.create_task(self._process(r.service, urls[name], disk), name=f"chaos:{name}")
                    else:
                        r.task = asyncio.create_task(r.service.run(history, disk), name=f"chaos:{name}")

                for s in services:
                    start(s.name)
                schedule = self.scaled_schedule()
                handles = self._schedule(schedule, api, names, running, start, broker, history)
                sampler = asyncio.create_task(self._sample(history))
                wall = time.perf_counter()
                await self._run_for(self.duration, history)
                wall = time.perf_counter() - wall
                for h in handles:
                    h.cancel()
                sampler.cancel()
                for r in running.values():
                    if r.task is not None:
                        r.task.cancel()
                await asyncio.gather(*(r.task for r in running.values() if r.task), return_exceptions=True)
        finally:
            for name in urls:
                await api.delete(name)
            if proxy_server is not None:
                await asyncio.to_thread(proxy_server.stop)
            if broker is not None:
                await broker.stop()

        checks_cfg = self._scaled_checks()
        facts = RunFacts(duration=self.duration, quiet_after=schedule.quiet_after, extras={**self.scenario.check_facts(), "timing_slack": _TIMING_SLACK})
        checks = run_checks(history.records, checks_cfg, facts)
        checks += run_custom_checks(history.records, checks_cfg, facts, self.scenario.pythonpath)
        report = build_report(
            scenario=self.scenario,
            mode="chaos",
            seed=self.seed,
            checks=checks,
            metrics=metrics(history.records, checks_cfg, facts),
            virtual_seconds=self.duration,
            wall_seconds=wall,
            trace_hash=None,
            schedule=schedule,
            replay=self.replay_command(),
            extra={"time_scale": round(self.scale, 6), "skipped_faults": self.skipped, "proxy": self.toxiproxy_url or "squall (own process)", "broker_url": self.external_broker or "embedded"},
        )
        return RunOutcome(report, history, schedule, None, self.scenario)

    def replay_command(self) -> str:
        """Everything that shaped this run: the schedule is scaled to the duration, so it is part of it."""
        cmd = f"squall chaos run {self.scenario_ref} --seed {self.seed} --duration {self.duration:g}"
        if self.external_broker is not None:
            cmd += f" --broker {self.external_broker}"
        if self.upstream_override is not None:
            cmd += f" --upstream {self.upstream_override}"
        return cmd

    async def _run_for(self, seconds: float, history: History) -> None:
        if self.progress is None:
            await asyncio.sleep(seconds)
            return
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        published, seen = 0, 0
        while True:
            records = history.records
            published += sum(1 for r in records[seen:] if r.get("event") == "publish")
            seen = len(records)
            left = end - loop.time()
            self.progress(min(seconds, seconds - left), published)
            if left <= 0:
                return
            await asyncio.sleep(min(0.25, left))

    def _scaled_checks(self) -> Any:
        c = self.scenario.checks
        s = self.scale
        floor = 0.0
        if self.scenario.runs_fleet:
            fleet = self.scenario.fleet_config()
            # The fleet's own clocks are not scaled: the controller needs a couple of its periods.
            floor = 2 * fleet.control_interval + 2 * fleet.telemetry_interval
        return c.model_copy(update={
            "convergence_s": max(5.0, floor, c.convergence_s * s),
            "grace_s": max(2.0, c.grace_s * s),
            "stale_availability_s": max(5.0, c.stale_availability_s * s),
        })

    async def _process(self, service: Service, url: str, disk: Path) -> None:
        """A user's service as a real process, until it exits or this task is cancelled (a crash)."""
        from sim.services import split_url

        assert service.user is not None and service.user.command is not None
        host, port = split_url(url)
        values = {"broker_url": url, "broker_host": host, "broker_port": port, "name": service.name, "index": service.index, "seed": self.seed, "disk": str(disk)}
        args = [a.format(**values) for a in service.user.command]
        env = dict(os.environ)
        env.update({f"SQUALL_{k.upper()}": str(v) for k, v in values.items()})
        env["SQUALL_SERVICE"] = service.user.name
        env["SQUALL_REPLICAS"] = str(service.user.replicas)
        env["PYTHONPATH"] = os.pathsep.join(p for p in [env.get("PYTHONPATH", ""), *self.scenario.pythonpath] if p)
        with (disk / "output.log").open("ab") as log_file:
            try:
                proc = await asyncio.create_subprocess_exec(*args, env=env, stdout=log_file, stderr=asyncio.subprocess.STDOUT, cwd=disk)
            except OSError as exc:
                if self.history is not None:
                    self.history.note("error", host=service.name, error=f"cannot start {args[0]!r}: {exc}")
                return
            try:
                code = await proc.wait()
                if self.history is not None:
                    self.history.note("exit", host=service.name, code=code)
            finally:
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()

    async def _sample(self, history: History) -> None:
        proc = psutil.Process()
        while True:
            history.note("sample", rss_mb=round(proc.memory_info().rss / 2**20, 2))
            await asyncio.sleep(self.scenario.chaos.sample_every)

    def _schedule(self, schedule: Schedule, api: ToxiproxyAPI, names: list[str], running: dict[str, _Running], start: Any, broker: Any, history: History) -> list[asyncio.TimerHandle]:
        loop = asyncio.get_running_loop()
        handles = []

        def later(at: float, coro_fn: Any, *args: Any) -> None:
            handles.append(loop.call_later(at, lambda: asyncio.ensure_future(self._guard(coro_fn, *args))))

        for f in schedule.faults:
            later(f.at, self._apply, f, True, api, names, running, start, broker, history)
            if f.duration is not None:
                later(f.at + f.duration, self._apply, f, False, api, names, running, start, broker, history)
        return handles

    async def _guard(self, coro_fn: Any, *args: Any) -> None:
        try:
            await coro_fn(*args)
        except Exception as exc:  # a fault that fails to apply is recorded, never fatal
            log.warning("fault failed: %s", exc)
            if self.history is not None:
                self.history.note("fault-error", error=f"{type(exc).__name__}: {exc}")

    def _proxies_for(self, target: str, names: list[str]) -> list[str]:
        if "<->" in target:
            a, b = (x.strip() for x in target.split("<->", 1))
            other = a if b == BROKER else b if a == BROKER else None
            return [other] if other in names else []
        host = target.rsplit(":", 1)[0]
        return list(names) if host == BROKER else []

    async def _apply(self, f: TimedFault, on: bool, api: ToxiproxyAPI, names: list[str], running: dict[str, _Running], start: Any, broker: Any, history: History) -> None:
        fault = f.fault
        history.note("fault" if on else "heal", kind=fault.kind, label=fault.label())
        if isinstance(fault, ToxicFault):
            for p in self._proxies_for(fault.target, names):
                if on:
                    await api.call("POST", f"/proxies/{p}/toxics", fault.toxic.to_json())
                else:
                    await api.call("DELETE", f"/proxies/{p}/toxics/{fault.toxic.name}")
        elif isinstance(fault, (DownFault, PartitionFault)):
            if isinstance(fault, DownFault):
                targets = self._proxies_for(fault.target, names)
            else:
                sides = (set(fault.a), set(fault.b))
                targets = [n for n in names if (n in sides[0] and BROKER in sides[1]) or (n in sides[1] and BROKER in sides[0])]
            for p in targets:
                await api.call("POST", f"/proxies/{p}", {"enabled": not on})
        elif isinstance(fault, CrashFault):
            if fault.host == BROKER:
                if broker is None:
                    self.skipped.append(f"crash of an external broker at {f.at:g}s")
                elif on:
                    history.note("crash", host=BROKER)
                    await broker.stop()
                else:
                    await broker.start()
            elif fault.host in running:
                r = running[fault.host]
                if on and r.task is not None:
                    history.note("crash", host=fault.host)
                    r.task.cancel()
                    await asyncio.gather(r.task, return_exceptions=True)
                    r.task = None
                elif not on and r.task is None:
                    start(fault.host)
        elif isinstance(fault, SkewFault) and on:
            self.skipped.append(f"clock skew of {fault.host} at {f.at:g}s (not possible for real)")


def _port_range(text: str | None) -> list[int] | None:
    """``"21000-21020"``: the ports proxies listen on when they must be known in advance."""
    if not text:
        return None
    try:
        lo, hi = (int(x) for x in text.split("-", 1))
    except ValueError:
        raise BadInput(f"SQUALL_PROXY_PORTS={text!r}: write a range like 21000-21020") from None
    return list(range(lo, hi + 1))


def run_chaos(scenario: Scenario, seed: int | None = None, *, out: Path | None = None, broker_url: str | None = None, toxiproxy_url: str | None = None, upstream: str | None = None, duration: float | None = None,
              scenario_ref: str | None = None, progress: Callable[[float, int], None] | None = None) -> RunOutcome:
    """``scenario_ref`` is what the replay command names (a path, when the scenario came from one);
    ``progress`` is called with the wall seconds run so far and the messages published, a few times a second."""
    seed = scenario.seed if seed is None else seed
    toxiproxy_url = toxiproxy_url or os.environ.get("TOXIPROXY_URL")
    preflight(broker_url, upstream, toxiproxy_url)
    runner = ChaosRun(scenario, seed, broker_url=broker_url, toxiproxy_url=toxiproxy_url, upstream=upstream, duration=duration,
                      scenario_ref=scenario_ref, progress=progress)
    from sim.runner import quiet

    with quiet("amqtt"):
        outcome = asyncio.run(runner.run())
    if out is not None:
        from sim.report import write_run

        write_run(out, outcome)
    return outcome
