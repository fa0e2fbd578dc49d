"""The `squall` command line: one typer app, each command a thin shell over a library call.

Commands import their implementation lazily, so `squall --help` is fast and `sim` never
imports `chaos` at module level (the dependency points the other way).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

import typer

try:  # typer 0.29 and later bring their own copy of click
    from typer._click import exceptions as _click
except ImportError:  # pragma: no cover - older typer uses click itself
    from click import exceptions as _click

from sim.errors import BadInput, out_dir, out_file

app = typer.Typer(
    name="squall",
    help="Deterministic simulation and chaos harness for MQTT message systems.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
sim_app = typer.Typer(help="Seeded runs in the simulated world.", no_args_is_help=True)
chaos_app = typer.Typer(help="The same scenarios for real, through the chaos proxy.", no_args_is_help=True)
system_app = typer.Typer(help="The message system itself, for real.", no_args_is_help=True)
app.add_typer(sim_app, name="sim")
app.add_typer(chaos_app, name="chaos")
app.add_typer(system_app, name="system")


def _version(value: bool) -> None:
    if value:
        from sim.run_cli import version_line

        print(version_line())
        raise typer.Exit(0)


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print squall's version (and amqtt's, Python's) and exit."),
) -> None:
    """Deterministic simulation and chaos harness for MQTT message systems."""


@sim_app.command("demo")
def sim_demo(
    seed: int = typer.Option(1, help="Seed of the run; the same seed replays the same run."),
    devices: int = typer.Option(10, min=1, max=10_000, help="Number of publishing devices (at most 10,000)."),
    seconds: float = typer.Option(60.0, min=0.001, max=1_000_000, help="Virtual seconds to run (at most 1,000,000)."),
) -> None:
    """Broker plus devices in the simulated world: a first look at squall."""
    from sim.demo import run_demo

    raise typer.Exit(run_demo(seed=seed, devices=devices, seconds=seconds))


def _default_out(kind: str, scenario: str, seed: int | None = None) -> Path:
    name = Path(scenario).stem if scenario.endswith(".toml") else scenario
    return Path("squall-runs") / (f"{kind}-{name}" + (f"-seed{seed}" if seed is not None else ""))


@sim_app.command("run")
def sim_run(
    scenario: str = typer.Argument(..., help="A shipped scenario's name (smoke, swarm, ...) or a .toml path."),
    seed: Optional[int] = typer.Option(None, help="Seed of the run (default: the scenario's)."),
    out: Optional[Path] = typer.Option(None, help="Run directory (default: squall-runs/sim-SCENARIO-seedN)."),
    duration: Optional[float] = typer.Option(None, min=0.001, max=1_000_000, help="Override the scenario's virtual duration (seconds, at most 1,000,000)."),
    as_json: bool = typer.Option(False, "--json", help="Print report.json on stdout (and nothing else); progress stays on stderr."),
) -> None:
    """One seeded run: report.json, report.md, history.jsonl, plots. Exit 1 if a check fails."""
    from sim.run_cli import run_one

    raise typer.Exit(run_one(scenario, seed, out, duration, as_json))


@sim_app.command("sweep")
def sim_sweep(
    scenario: str = typer.Argument(..., help="A shipped scenario's name or a .toml path."),
    seeds: str = typer.Option("1-20", help="Seeds: a range 1-50, a list 3,7,9, or both."),
    jobs: Optional[int] = typer.Option(None, min=1, max=256, help="Parallel runs (default: the number of cores; at most 256)."),
    out: Optional[Path] = typer.Option(None, help="Sweep directory (default: squall-runs/sweep-SCENARIO)."),
    as_json: bool = typer.Option(False, "--json", help="Print sweep.json on stdout (and nothing else); progress stays on stderr."),
) -> None:
    """Many seeds in parallel with a progress bar; failing seeds listed with their replay commands.

    Ctrl-C stops the workers, writes a partial sweep.json (partial: true, seeds_done) and exits 130
    (SIGTERM the same, exit 143).
    """
    from sim.run_cli import sweep_many

    raise typer.Exit(sweep_many(scenario, seeds, jobs, out or _default_out("sweep", scenario), as_json))


@sim_app.command("list")
def sim_list(
    as_json: bool = typer.Option(False, "--json", help="Print the list as JSON (name, description, duration, seed)."),
) -> None:
    """The shipped scenarios, with what each one shows; run one with squall sim run NAME."""
    from sim.run_cli import list_scenarios

    raise typer.Exit(list_scenarios(as_json))


@sim_app.command("replay")
def sim_replay(run_dir: Path = typer.Argument(..., help="A run directory written by squall sim run.")) -> None:
    """Run a run directory again; exit 0 when the trace hash matches, else print the first divergence."""
    from sim.run_cli import replay_dir

    raise typer.Exit(replay_dir(run_dir))


@sim_app.command("shrink")
def sim_shrink(
    run_dir: Path = typer.Argument(..., help="A failing run directory (from sim run or a sweep)."),
    runs: int = typer.Option(60, min=1, max=10_000, help="How many runs the shrinker may spend (at most 10,000)."),
    out: Optional[Path] = typer.Option(None, help="Where to write the shrunk scenario (default: RUN_DIR/shrunk.toml)."),
) -> None:
    """Shrink a failing run's fault schedule to a minimal one that still fails; write it as a scenario."""
    from sim.run_cli import shrink_dir

    raise typer.Exit(shrink_dir(run_dir, runs, out))


@chaos_app.command("run")
def chaos_run(
    scenario: str = typer.Argument(..., help="A shipped scenario's name or a .toml path."),
    seed: Optional[int] = typer.Option(None, help="Seed of the fault schedule (default: the scenario's)."),
    out: Optional[Path] = typer.Option(None, help="Run directory (default: squall-runs/chaos-SCENARIO-seedN)."),
    duration: Optional[float] = typer.Option(None, min=1, max=86_400, help="Wall seconds (default: the scenario's [chaos] duration; at most a day)."),
    broker_url: Optional[str] = typer.Option(None, "--broker", help="An external broker instead of the embedded one, e.g. mqtt://127.0.0.1:1883."),
    upstream: Optional[str] = typer.Option(None, help="HOST:PORT the proxy uses to reach the broker, when it differs (proxy in a container)."),
    as_json: bool = typer.Option(False, "--json", help="Print report.json on stdout (and nothing else); progress stays on stderr."),
) -> None:
    """The scenario for real on loopback, faults through the proxy (TOXIPROXY_URL for a real Toxiproxy)."""
    from chaos.cli import run_one

    raise typer.Exit(run_one(scenario, seed, out, duration, broker_url, upstream, as_json))


@chaos_app.command("nightly")
def chaos_nightly(
    out: Optional[Path] = typer.Option(None, help="Report directory (default: squall-runs/nightly-DATE)."),
    duration: float = typer.Option(15.0, min=1, max=86_400, help="Wall seconds per chaos scenario (at most a day)."),
    seeds: str = typer.Option("1-10", help="Seeds of the sim sweep."),
    sweep_scenario: str = typer.Option("swarm", help="Scenario of the sim sweep."),
    broker_url: Optional[str] = typer.Option(None, "--broker", help="An external broker for the chaos runs."),
    upstream: Optional[str] = typer.Option(None, help="HOST:PORT the proxy uses to reach the broker."),
    jobs: Optional[int] = typer.Option(None, min=1, max=256, help="Parallel runs in the sweep (default: the number of cores; at most 256)."),
    scenarios: Optional[str] = typer.Option(None, help="Comma-separated scenarios to run in chaos: shipped names or .toml files (default: every shipped one)."),
) -> None:
    """Every shipped scenario in chaos plus a sim sweep, one report directory with an index."""
    from chaos.nightly import nightly

    raise typer.Exit(nightly(out, duration, seeds, sweep_scenario, broker_url, upstream, jobs, scenarios))


@app.command("init")
def init(
    folder: Path = typer.Argument(Path("."), help="Your project folder (default: here)."),
    package: str = typer.Option(..., "--package", help="Your services' Python package (an example is written if it does not exist)."),
) -> None:
    """Starter files to test your own services: squall.toml, squall_checks.py, tests/test_squall.py."""
    from sim.starter import write_starter

    for parent in folder.parents:  # a folder under a file: one line, not a traceback
        if parent.exists() and not parent.is_dir():
            raise BadInput(f"{folder}: {parent} is a file, not a folder; give a folder for the starter files")
    for path, written in write_starter(folder, package):
        print(f"{'wrote' if written else 'kept '} {path}")
    print(f"next: cd {folder} && squall sim run squall.toml && python -m pytest tests/test_squall.py")


@app.command("bench")
def bench(
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the figures as JSON to FILE."),
    only: Optional[str] = typer.Option(None, help="Comma-separated figure names to run."),
    quick: bool = typer.Option(False, help="Smaller workloads (for smoke-testing the bench itself)."),
    check: bool = typer.Option(False, "--check", help="Compare the ratio figures with the baseline; exit 1 if one fell more than 10%."),
    baseline: Optional[Path] = typer.Option(None, "--baseline", help="Baseline FILE for --check/--update-baseline (default: the committed sim/bench/baseline.json)."),
    update_baseline: bool = typer.Option(False, "--update-baseline", help="Write this run's ratio figures as the baseline."),
) -> None:
    """Benchmark figures, measured side by side in one run."""
    from sim.bench import run_bench

    if json_out is not None:
        out_file(json_out, "--json", "figures.json")  # before the figures run, not after
    if check or update_baseline or baseline is not None:
        from sim.bench._check import run_check

        if check == update_baseline:
            raise BadInput("choose one: --check compares with the baseline, --update-baseline rewrites it")
        raise typer.Exit(run_check(baseline=baseline, json_out=json_out, only=only, quick=quick, update=update_baseline))
    raise typer.Exit(run_bench(json_out=json_out, only=only, quick=quick))


@app.command("proxy")
def proxy(
    host: str = typer.Option("127.0.0.1", help="Address of the Toxiproxy HTTP API (loopback by default)."),
    port: int = typer.Option(8474, min=0, max=65535, help="Port of the HTTP API (Toxiproxy's default 8474)."),
    config: Optional[Path] = typer.Option(
        None, help="JSON array of proxies to create at start, like toxiproxy-server -config."
    ),
) -> None:
    """Toxiproxy-compatible chaos proxy, standalone, until Ctrl-C."""
    from chaos.proxy import run

    raise typer.Exit(run(host=host, port=port, config=config))


@app.command("broker")
def broker(
    host: str = typer.Option("127.0.0.1", help="Address to listen on (loopback by default)."),
    port: int = typer.Option(1883, min=0, max=65535, help="Port to listen on (0 picks a free one)."),
    flavor: str = typer.Option("squall", help="squall (amqtt with squall's MQTT 3.1.1 fixes) or amqtt (stock)."),
    conformance: bool = typer.Option(False, "--conformance", help="Run the MQTT 3.1.1 conformance suite instead."),
    against: Optional[str] = typer.Option(
        None, help="HOST:PORT of any broker to check (default: a fresh embedded broker of --flavor)."
    ),
    only: Optional[str] = typer.Option(None, help="With --conformance: only statements whose name contains this."),
    seed: Optional[int] = typer.Option(None, help="With --conformance: seed for client ids and topic names."),
    user: Optional[str] = typer.Option(None, help="NAME:PASSWORD the broker accepts (with --against: the one it has)."),
    denied_filter: Optional[str] = typer.Option(None, help="A filter that --user may not use (with --against: the one it has)."),
) -> None:
    """The embedded MQTT broker standalone until Ctrl-C, or --conformance: the statement table (exit 1 on a failure)."""
    from system.broker._standalone import UsageError, conformance as run_conformance, serve

    if against is not None and not conformance:
        raise BadInput("--against only makes sense with --conformance; add --conformance")
    try:
        code = (
            run_conformance(against, flavor, only, seed, user, denied_filter)
            if conformance else serve(host, port, flavor, user=user, denied_filter=denied_filter)
        )
    except UsageError as exc:
        raise BadInput(str(exc)) from None
    raise typer.Exit(code)


@system_app.command("up")
def system_up(
    port: int = typer.Option(1883, min=0, max=65535, help="Loopback port of the embedded broker (0 picks a free one)."),
    rooms: int = typer.Option(2, min=1, help="Rooms, each with its sensors and one heater."),
    sensors_per_room: int = typer.Option(2, "--sensors-per-room", min=1, help="Temperature sensors per room."),
    seed: int = typer.Option(1, help="Seed of the sensors' noise, the rooms' start and the backoff jitter."),
    data: Optional[Path] = typer.Option(None, help="Directory for the services' sqlite files (default: a temporary one)."),
) -> None:
    """The embedded broker and the reference fleet on loopback, for real, until Ctrl-C."""
    from pydantic import ValidationError

    from system.fleet import FleetConfig
    from system.fleet._live import UpError, run_up

    try:
        code = run_up(port, FleetConfig(rooms=rooms, sensors_per_room=sensors_per_room), seed=seed, data_dir=out_dir(data, "--data") if data else None)
    except (UpError, ValidationError) as exc:
        raise BadInput(str(exc).splitlines()[0]) from None
    raise typer.Exit(code)


def _usage(exc: _click.UsageError) -> str:
    """click's usage error (bad option, missing argument, out of range) as one line."""
    message = " ".join(exc.format_message().split()).rstrip(".")
    where = exc.ctx.command_path if exc.ctx is not None else "squall"
    return f"{message}; see {where} --help"


def main(argv: list[str] | None = None) -> None:
    """Console entry point: bad input is one line on stderr and exit code 2, never a traceback."""
    try:
        code = app(args=argv, standalone_mode=False)
    except _click.NoArgsIsHelpError as exc:  # a bare `squall` or `squall sim`: the help
        exc.show()
        sys.exit(exc.exit_code)
    except _click.UsageError as exc:
        print(f"squall: error: {_usage(exc)}", file=sys.stderr)
        sys.exit(2)
    except _click.ClickException as exc:
        print(f"squall: error: {' '.join(exc.format_message().split())}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except BadInput as exc:
        print(f"squall: error: {' '.join(str(exc).splitlines())}", file=sys.stderr)  # one line, whatever it quotes
        sys.exit(2)
    except (KeyboardInterrupt, typer.Abort):
        print("squall: interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as exc:  # a bug of ours: one line by default, the traceback on request
        if os.environ.get("SQUALL_DEBUG"):
            raise
        print(f"squall: internal error: {type(exc).__name__}: {exc} (set SQUALL_DEBUG=1 for the traceback, and please report it)", file=sys.stderr)
        sys.exit(3)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":  # pragma: no cover
    main()
