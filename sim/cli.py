"""The `squall` command line: one typer app, each command a thin shell over a library call.

Commands import their implementation lazily, so `squall --help` is fast and `sim` never
imports `chaos` at module level (the dependency points the other way).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from sim.errors import BadInput

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


@sim_app.command("demo")
def sim_demo(
    seed: int = typer.Option(1, help="Seed of the run; the same seed replays the same run."),
    devices: int = typer.Option(10, min=1, help="Number of publishing devices."),
    seconds: float = typer.Option(60.0, min=0.001, help="Virtual seconds to run."),
) -> None:
    """Broker plus devices in the simulated world: a first look at squall."""
    from sim.demo import run_demo

    raise typer.Exit(run_demo(seed=seed, devices=devices, seconds=seconds))


@app.command("bench")
def bench(
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the figures as JSON to FILE."),
    only: Optional[str] = typer.Option(None, help="Comma-separated figure names to run."),
    quick: bool = typer.Option(False, help="Smaller workloads (for smoke-testing the bench itself)."),
) -> None:
    """Benchmark figures, measured side by side in one run."""
    from sim.bench import run_bench

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
) -> None:
    """The embedded MQTT broker standalone until Ctrl-C, or --conformance: the statement table (exit 1 on a failure)."""
    from system.broker._standalone import UsageError, conformance as run_conformance, serve

    if against is not None and not conformance:
        raise BadInput("--against only makes sense with --conformance; add --conformance")
    try:
        code = run_conformance(against, flavor, only, seed) if conformance else serve(host, port, flavor)
    except UsageError as exc:
        raise BadInput(str(exc)) from None
    raise typer.Exit(code)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: bad input is one line on stderr and exit code 2, never a traceback."""
    try:
        app(args=argv, standalone_mode=True)
    except BadInput as exc:
        print(f"squall: error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("squall: interrupted", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":  # pragma: no cover
    main()
