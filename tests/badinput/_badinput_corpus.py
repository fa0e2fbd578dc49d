"""The bad-input corpus: hostile scenario files, CLI arguments and damaged run directories.

Every case must end the same way: exit code 2, exactly one line on stderr that starts with
``squall: error:`` and names the problem (``expect``), no traceback, and no hang. A case is data:
the arguments (``{tmp}`` is the case's scratch folder, ``{file}`` the scenario it writes,
``{run}`` a copy of a real, passing sim run directory), the files it writes first, and how it
damages the run directory.
"""

from __future__ import annotations

import gzip
import json
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

BASE = 'name = "x"\nduration = 10\n'
FLEET = BASE + "[fleet]\n"
SWARM = BASE + 'swarm_quiet = 0\n[swarm]\ntargets = ["broker:1883"]\n'


@dataclass(frozen=True)
class Case:
    id: str
    category: str  # "scenario", "cli" or "run dir"
    argv: tuple[str, ...]
    expect: str  # a piece of the error line
    scenario: bytes | None = None  # written to {file}
    damage: Callable[[Path], None] | None = None  # applied to {run}
    files: dict[str, bytes] = field(default_factory=dict)  # written under {tmp}
    env: dict[str, str] = field(default_factory=dict)  # environment variables set for the case ({closed} filled in)

    @property
    def needs_run(self) -> bool:
        return "{run}" in " ".join(self.argv)


def _scenario(id: str, text: str | bytes, expect: str) -> Case:
    data = text.encode() if isinstance(text, str) else text
    return Case(id, "scenario", ("sim", "run", "{file}", "--out", "{tmp}/out"), expect, scenario=data)


def _nested(depth: int) -> str:
    return BASE + "deep = " + "[" * depth + "]" * depth + "\n"


def _nested_tables(depth: int) -> str:
    return BASE + "[fleet]\nrooms = " + "{a = " * depth + "1" + "}" * depth + "\n"


SCENARIOS = [
    _scenario("non-utf8", b'name = "caf\xe9"\nduration = 10\n', "UTF-8"),
    _scenario("non-utf8-bom-latin1", b"\xff\xfename = 1\n", "UTF-8"),
    _scenario("nul-bytes", BASE + "\x00\n", "not valid TOML"),
    _scenario("deep-arrays", _nested(5000), "nested"),
    _scenario("deep-inline-tables", _nested_tables(3000), "nested"),
    _scenario("duration-inf", 'name = "x"\nduration = inf\n', "duration"),
    _scenario("duration-nan", 'name = "x"\nduration = nan\n', "duration"),
    _scenario("duration-huge", 'name = "x"\nduration = 1e308\n', "duration"),
    _scenario("duration-2-years", 'name = "x"\nduration = 63072000\n', "duration"),
    _scenario("fleet-interval-inf", FLEET + "telemetry_interval = inf\n", "fleet.telemetry_interval"),
    _scenario("fleet-interval-nan", FLEET + "telemetry_interval = nan\n", "fleet.telemetry_interval"),
    _scenario("fleet-interval-tiny", FLEET + "telemetry_interval = 1e-9\n", "fleet.telemetry_interval"),
    _scenario("fleet-control-tiny", FLEET + "control_interval = 1e-9\n", "fleet.control_interval"),
    _scenario("fleet-outside-nan", FLEET + "outside = nan\n", "fleet.outside"),
    _scenario("fleet-band-inf", FLEET + "band = [-inf, inf]\n", "fleet.band"),
    _scenario("fleet-command-timeout-inf", FLEET + "command_timeout = inf\n", "fleet.command_timeout"),
    _scenario("fleet-not-a-table", BASE + "fleet = 3\n", "fleet"),
    _scenario("fleet-too-big", FLEET + "rooms = 1000\nsensors_per_room = 100\ntelemetry_interval = 0.01\n", "fleet"),
    _scenario("network-latency-inf", BASE + "[network]\nlatency_ms = inf\n", "network.latency_ms"),
    _scenario("network-tick-nan", BASE + "[network]\ntick_ms = nan\n", "network.tick_ms"),
    _scenario("network-user-timeout-tiny", BASE + "[network]\nuser_timeout_s = 1e-9\n", "network.user_timeout_s"),
    _scenario("memory-every-tiny", BASE + "memory_every = 1e-9\n", "memory_every"),
    _scenario("swarm-quiet-inf", BASE + "swarm_quiet = inf\n", "swarm_quiet"),
    _scenario("churn-every-tiny", BASE + "[workload]\nchurn_subscriber = true\nchurn_every = 1e-9\n", "workload.churn_every"),
    _scenario("chaos-table-duration-inf", BASE + "[chaos]\nduration = inf\n", "chaos.duration"),
    _scenario("chaos-sample-tiny", BASE + "[chaos]\nsample_every = 1e-9\n", "chaos.sample_every"),
    _scenario("checks-convergence-nan", BASE + "[checks]\nconvergence_s = nan\n", "checks.convergence_s"),
    _scenario("checks-latency-inf", BASE + "[checks]\nlatency_p99_ms = inf\n", "checks.latency_p99_ms"),
    _scenario("swarm-rate-huge", SWARM + "per_minute = 1e12\n", "swarm.per_minute"),
    _scenario("swarm-rate-inf", SWARM + "per_minute = inf\n", "swarm.per_minute"),
    _scenario("swarm-duration-tiny", SWARM + "min_duration = 1e-9\nmax_duration = 1e-9\n", "swarm.min_duration"),
    _scenario("swarm-durations-swapped", SWARM + "min_duration = 10\nmax_duration = 1\n", "min_duration"),
    _scenario("swarm-unknown-toxic", SWARM + 'toxic_types = ["lag"]\n', "swarm.toxic_types"),
    _scenario("swarm-empty-toxics", SWARM + "toxic_types = []\n", "swarm.toxic_types"),
    _scenario("swarm-unknown-kind", SWARM + 'kinds = ["meteor"]\n', "swarm.kinds"),
    _scenario("fault-no-kind", BASE + "[[faults]]\nat = 1\nhost = \"a\"\n", "faults[0].kind: Field required"),
    _scenario("fault-unknown-kind", BASE + '[[faults]]\nat = 1\nkind = "meteor"\n', "faults[0].kind"),
    _scenario("fault-missing-host", BASE + '[[faults]]\nat = 1\nkind = "crash"\n', "faults[0].host: Field required"),
    _scenario("fault-toxic-missing-type", BASE + '[[faults]]\nat = 1\nkind = "toxic"\ntarget = "broker:1883"\n', "faults[0].type"),
    _scenario("fault-at-inf", BASE + '[[faults]]\nat = inf\nkind = "crash"\nhost = "a"\n', "faults[0].at"),
    _scenario("fault-duration-nan", BASE + '[[faults]]\nat = 1\nduration = nan\nkind = "crash"\nhost = "a"\n', "faults[0].duration"),
    _scenario("fault-skew-drift-huge", BASE + '[[faults]]\nat = 1\nkind = "skew"\nhost = "a"\noffset = 1\ndrift = 1e300\n', "faults[0].drift"),
    _scenario("fault-skew-offset-inf", BASE + '[[faults]]\nat = 1\nkind = "skew"\nhost = "a"\noffset = inf\n', "faults[0].offset"),
    _scenario("fault-toxicity-nan", BASE + '[[faults]]\nat = 1\nkind = "toxic"\ntarget = "broker:1883"\ntype = "latency"\ntoxicity = nan\n', "faults[0].toxicity"),
    _scenario("fault-unknown-host", BASE + '[[faults]]\nat = 1\nkind = "crash"\nhost = "sensor-r9-9"\n', "faults[0].host: no host 'sensor-r9-9'"),
    _scenario("fault-unknown-partition-host", BASE + '[[faults]]\nat = 1\nkind = "partition"\na = ["broker"]\nb = ["nobody"]\n', "faults[0].b: no host 'nobody'"),
    _scenario("fault-bad-target", BASE + '[[faults]]\nat = 1\nkind = "down"\ntarget = "broker"\n', "faults[0].target"),
    _scenario("fault-unknown-link-host", BASE + '[[faults]]\nat = 1\nkind = "toxic"\ntype = "latency"\ntarget = "broker<->nobody"\n', "faults[0].target: no host 'nobody'"),
    _scenario("swarm-unknown-crash-host", SWARM + 'kinds = ["crash"]\ncrash_hosts = ["nobody"]\n', "swarm.crash_hosts: no host 'nobody'"),
    _scenario("checks-skip-unknown", BASE + '[checks]\nskip = ["latnecy"]\n', "checks.skip: unknown check 'latnecy'"),
    _scenario("checks-topics-bad-filter", BASE + '[checks]\ntopics = "fleet/#/telemetry"\n', "checks.topics"),
    _scenario("checks-topics-empty", BASE + '[checks]\ntopics = ""\n', "checks.topics"),
    _scenario("checks-receiver-unknown", BASE + '[checks]\nreceivers = ["recoder"]\n', "checks.receivers: no host 'recoder'"),
    _scenario("swarm-draws-nothing", BASE + '[swarm]\nkinds = ["crash", "toxic"]\n', "swarm: none of its kinds can be drawn"),
    Case("service-program-missing", "scenario", ("chaos", "run", "{file}", "--duration", "2", "--out", "{tmp}/c"), "command '/no/such/program'",
         scenario=BASE.encode() + b'[[services]]\nname = "svc"\ncommand = ["/no/such/program", "{broker_url}"]\n'),
    _scenario("service-entry-missing", BASE + '[[services]]\nname = "svc"\nentry = "no_such_module:main"\n', "module 'no_such_module' not found"),
    _scenario("fault-not-a-table", BASE + "faults = [1, 2]\n", "faults[0]"),
    _scenario("two-errors-both-shown", 'name = "x"\nduration = -1\nseed = "s"\n', "duration: Input should be greater than 0 (got -1); seed: "),
    _scenario("long-input-is-cut", 'name = "x"\nduration = "' + "9" * 5000 + '"\n', "duration"),
    _scenario("top-level-array", "[[x]]\n", "x: Extra inputs"),
    _scenario("empty-file", "", "name: Field required"),
]


def _run_json(run: Path, change: Callable[[dict], object]) -> None:
    path = run / "report.json"
    report = json.loads(path.read_text())
    change(report)  # in place
    path.write_text(json.dumps(report))


def _tamper(run: Path) -> None:
    # A different scenario, so that the hash differs and replay reads the stored trace.
    text = (run / "scenario.toml").read_text().replace("telemetry_interval = 1.0", "telemetry_interval = 1.5")
    (run / "scenario.toml").write_text(text)


def _truncate_trace(run: Path) -> None:
    _tamper(run)
    data = (run / "trace.jsonl.gz").read_bytes()
    (run / "trace.jsonl.gz").write_bytes(data[: len(data) // 2])


def _garbage_trace(run: Path) -> None:
    _tamper(run)
    (run / "trace.jsonl.gz").write_bytes(b"not gzip at all")


def _bad_trace_lines(run: Path) -> None:
    _tamper(run)
    with gzip.open(run / "trace.jsonl.gz", "wt") as fh:
        fh.write('{"not": "a list"}\n[1, 2]\n')


def _failing(report: dict) -> None:
    report["checks"][0]["ok"] = False
    report["ok"] = False


def _replay(id: str, damage: Callable[[Path], None], expect: str) -> Case:
    return Case(id, "run dir", ("sim", "replay", "{run}"), expect, damage=damage)


def _shrink(id: str, damage: Callable[[Path], None], expect: str) -> Case:
    return Case(id, "run dir", ("sim", "shrink", "{run}", "--runs", "1"), expect, damage=damage)


RUN_DIRS = [
    _replay("report-missing", lambda r: (r / "report.json").unlink(), "report.json"),
    _replay("report-not-json", lambda r: (r / "report.json").write_text("{oops"), "report.json"),
    _replay("report-not-utf8", lambda r: (r / "report.json").write_bytes(b'{"seed": "\xff"}'), "report.json"),
    _replay("report-a-list", lambda r: (r / "report.json").write_text("[]"), "report.json"),
    _replay("report-no-seed", lambda r: _run_json(r, lambda d: d.pop("seed")), "seed"),
    _replay("report-seed-a-string", lambda r: _run_json(r, lambda d: d.update(seed="one")), "seed"),
    _replay("report-no-hash", lambda r: _run_json(r, lambda d: d.pop("trace_hash")), "trace_hash"),
    _replay("report-deep", lambda r: (r / "report.json").write_text("[" * 100000 + "]" * 100000), "report.json"),
    _replay("scenario-missing", lambda r: (r / "scenario.toml").unlink(), "scenario.toml"),
    _replay("scenario-not-utf8", lambda r: (r / "scenario.toml").write_bytes(b"name = '\xff'\n"), "UTF-8"),
    _replay("trace-truncated", _truncate_trace, "trace.jsonl.gz"),
    _replay("trace-not-gzip", _garbage_trace, "trace.jsonl.gz"),
    _replay("trace-bad-lines", _bad_trace_lines, "trace.jsonl.gz"),
    _shrink("shrink-no-checks", lambda r: _run_json(r, lambda d: d.pop("checks")), "checks"),
    _shrink("shrink-checks-not-a-list", lambda r: _run_json(r, lambda d: d.update(checks=3)), "checks"),
    _shrink("shrink-check-without-ok", lambda r: _run_json(r, lambda d: d.update(checks=[{"name": "x"}])), "checks"),
    _shrink("shrink-no-seed", lambda r: _run_json(r, lambda d: (_failing(d), d.pop("seed"))), "seed"),
    _shrink("shrink-scenario-missing", lambda r: (_run_json(r, _failing), (r / "scenario.toml").unlink()), "scenario.toml"),
    Case("shrink-out-is-a-dir", "run dir", ("sim", "shrink", "{run}", "--runs", "1", "--out", "{run}"), "--out", damage=lambda r: _run_json(r, _failing)),
    Case("shrink-out-under-a-file", "run dir", ("sim", "shrink", "{run}", "--runs", "1", "--out", "{run}/report.json/x.toml"), "--out", damage=lambda r: _run_json(r, _failing)),
    Case("replay-a-file", "run dir", ("sim", "replay", "{run}/report.json"), "run directory"),
]


def closed_port() -> int:
    """A loopback port nothing listens on (bound then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_HELD: list[socket.socket] = []


def busy_port() -> int:
    """A loopback port something listens on for as long as this process lives."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    _HELD.append(s)
    return s.getsockname()[1]


LONG = "x" * 300
HUGE_SEEDS = "1-1000000000000"


def _cli(id: str, argv: tuple[str, ...], expect: str, files: dict[str, bytes] | None = None, env: dict[str, str] | None = None) -> Case:
    return Case(id, "cli", argv, expect, files=files or {}, env=env or {})


A_FILE = {"afile": b"not a directory\n"}
CLI = [
    _cli("run-out-a-file", ("sim", "run", "smoke", "--duration", "1", "--out", "{tmp}/afile"), "--out", A_FILE),
    _cli("run-out-under-a-file", ("sim", "run", "smoke", "--duration", "1", "--out", "{tmp}/afile/run"), "--out", A_FILE),
    _cli("run-out-long-name", ("sim", "run", "smoke", "--duration", "1", "--out", "{tmp}/" + LONG), "--out"),
    _cli("run-duration-inf", ("sim", "run", "smoke", "--duration", "inf", "--out", "{tmp}/o"), "--duration"),
    _cli("run-duration-nan", ("sim", "run", "smoke", "--duration", "nan", "--out", "{tmp}/o"), "--duration"),
    _cli("run-duration-huge", ("sim", "run", "smoke", "--duration", "1e308", "--out", "{tmp}/o"), "--duration"),
    _cli("run-seed-not-int", ("sim", "run", "smoke", "--seed", "one"), "--seed"),
    _cli("run-unknown-option", ("sim", "run", "smoke", "--bogus"), "--bogus"),
    _cli("run-missing-scenario", ("sim", "run"), "scenario"),
    _cli("run-scenario-a-dir", ("sim", "run", "{tmp}"), "scenario"),
    _cli("run-scenario-long-name", ("sim", "run", LONG + ".toml"), "scenario"),
    _cli("run-scenario-a-device", ("sim", "run", "/dev/null"), "scenario"),
    _cli("sweep-huge-range", ("sim", "sweep", "smoke", "--seeds", HUGE_SEEDS, "--out", "{tmp}/s"), "--seeds"),
    _cli("sweep-huge-list", ("sim", "sweep", "smoke", "--seeds", "1-60000,70000-130000", "--out", "{tmp}/s"), "--seeds"),
    _cli("sweep-seed-overflow", ("sim", "sweep", "smoke", "--seeds", "9" * 5000, "--out", "{tmp}/s"), "--seeds"),
    _cli("sweep-out-a-file", ("sim", "sweep", "smoke", "--seeds", "1", "--out", "{tmp}/afile"), "--out", A_FILE),
    _cli("sweep-jobs-huge", ("sim", "sweep", "smoke", "--seeds", "1", "--jobs", "100000", "--out", "{tmp}/s"), "--jobs"),
    _cli("demo-seconds-inf", ("sim", "demo", "--seconds", "inf"), "--seconds"),
    _cli("demo-seconds-nan", ("sim", "demo", "--seconds", "nan"), "--seconds"),
    _cli("demo-seconds-huge", ("sim", "demo", "--seconds", "1e308"), "--seconds"),
    _cli("demo-devices-huge", ("sim", "demo", "--devices", "100000000"), "--devices"),
    _cli("shrink-runs-huge", ("sim", "shrink", "{tmp}", "--runs", "1000000000"), "--runs"),
    _cli("chaos-broker-malformed", ("chaos", "run", "smoke", "--broker", "mqtt://", "--out", "{tmp}/c"), "--broker"),
    _cli("chaos-broker-bad-port", ("chaos", "run", "smoke", "--broker", "mqtt://127.0.0.1:99999", "--out", "{tmp}/c"), "--broker"),
    _cli("chaos-broker-port-text", ("chaos", "run", "smoke", "--broker", "mqtt://127.0.0.1:mqtt", "--out", "{tmp}/c"), "--broker"),
    _cli("chaos-broker-bare-port", ("chaos", "run", "smoke", "--broker", "1883", "--out", "{tmp}/c"), "--broker"),
    _cli("chaos-broker-closed", ("chaos", "run", "smoke", "--broker", "mqtt://127.0.0.1:{closed}", "--duration", "2", "--out", "{tmp}/c"), "mqtt://127.0.0.1:"),
    _cli("chaos-upstream-malformed", ("chaos", "run", "smoke", "--upstream", "nowhere", "--out", "{tmp}/c"), "--upstream"),
    _cli("chaos-duration-inf", ("chaos", "run", "smoke", "--duration", "inf", "--out", "{tmp}/c"), "--duration"),
    _cli("chaos-out-a-file", ("chaos", "run", "smoke", "--duration", "1", "--out", "{tmp}/afile"), "--out", A_FILE),
    _cli("chaos-toxiproxy-closed", ("chaos", "run", "smoke", "--duration", "2", "--out", "{tmp}/c"), "TOXIPROXY_URL=http://127.0.0.1:", env={"TOXIPROXY_URL": "http://127.0.0.1:{closed}"}),
    _cli("chaos-toxiproxy-malformed", ("chaos", "run", "smoke", "--duration", "2", "--out", "{tmp}/c"), "TOXIPROXY_URL=garbage", env={"TOXIPROXY_URL": "garbage"}),
    _cli("nightly-broker-bare-port", ("chaos", "nightly", "--broker", "1883", "--out", "{tmp}/n"), "--broker"),
    _cli("nightly-broker-closed", ("chaos", "nightly", "--broker", "mqtt://127.0.0.1:{closed}", "--out", "{tmp}/n"), "mqtt://127.0.0.1:"),
    _cli("nightly-huge-seeds", ("chaos", "nightly", "--seeds", HUGE_SEEDS, "--out", "{tmp}/n"), "--seeds"),
    _cli("nightly-duration-inf", ("chaos", "nightly", "--duration", "inf", "--out", "{tmp}/n"), "--duration"),
    _cli("nightly-out-a-file", ("chaos", "nightly", "--out", "{tmp}/afile", "--scenarios", "smoke"), "--out", A_FILE),
    _cli("nightly-unknown-scenario", ("chaos", "nightly", "--scenarios", "nope", "--out", "{tmp}/n"), "--scenarios"),
    _cli("bench-json-under-a-file", ("bench", "--quick", "--only", "devices_10", "--json", "{tmp}/afile/b.json"), "is a file, not a folder", A_FILE),
    _cli("bench-json-a-dir", ("bench", "--quick", "--only", "devices_10", "--json", "{tmp}"), "--json"),
    _cli("broker-port-in-use", ("broker", "--port", "{busy}"), "cannot listen on 127.0.0.1:"),
    _cli("broker-host-unknown", ("broker", "--host", "no-such-host.invalid", "--port", "0"), "no-such-host.invalid"),
    _cli("system-up-data-a-file", ("system", "up", "--port", "0", "--data", "{tmp}/afile"), "--data", A_FILE),
    _cli("broker-port-out-of-range", ("broker", "--port", "70000"), "--port"),
    _cli("broker-against-alone", ("broker", "--against", "127.0.0.1:1"), "--against"),
    _cli("proxy-config-missing", ("proxy", "--port", "0", "--config", "{tmp}/nope.json"), "nope.json"),
    _cli("proxy-config-not-json", ("proxy", "--port", "0", "--config", "{tmp}/afile"), "afile", A_FILE),
    _cli("proxy-config-deep", ("proxy", "--port", "0", "--config", "{tmp}/deep.json"), "nested too deeply", {"deep.json": b"[" * 100_000}),
    _cli("proxy-config-a-device", ("proxy", "--port", "0", "--config", "/dev/zero"), "not a regular file"),
    _cli("proxy-config-a-dir", ("proxy", "--port", "0", "--config", "{tmp}"), "not a regular file"),
    _cli("system-up-rooms-zero", ("system", "up", "--rooms", "0"), "--rooms"),
    _cli("init-under-a-file", ("init", "{tmp}/afile/project", "--package", "myapp"), "is a file, not a folder", A_FILE),
    _cli("init-bad-package", ("init", "{tmp}/project", "--package", "not a name"), "--package"),
    _cli("unknown-command", ("nosuch",), "nosuch"),
]

CASES: list[Case] = SCENARIOS + CLI + RUN_DIRS


def prepare(case: Case, tmp: Path, run: Path | None) -> tuple[list[str], dict[str, str]]:
    """Write the case's files (and damage its run directory copy); its argv and env, filled in."""
    tmp.mkdir(parents=True, exist_ok=True)
    for name, data in case.files.items():
        (tmp / name).write_bytes(data)
    if case.scenario is not None:
        (tmp / "scenario.toml").write_bytes(case.scenario)
    if case.damage is not None:
        assert run is not None
        case.damage(run)
    fill = {"{tmp}": str(tmp), "{file}": str(tmp / "scenario.toml"), "{run}": str(run), "{closed}": str(closed_port())}
    if any("{busy}" in arg for arg in case.argv):
        fill["{busy}"] = str(busy_port())

    def filled(text: str) -> str:
        for key, value in fill.items():
            text = text.replace(key, value)
        return text

    return [filled(arg) for arg in case.argv], {k: filled(v) for k, v in case.env.items()}
