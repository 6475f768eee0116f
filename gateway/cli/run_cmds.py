"""Long-running commands: the gateway and the engine simulator."""

from __future__ import annotations

from pathlib import Path

import typer

from ..config import ConfigError


def serve(
    config: Path | None = typer.Option(None, "--config", "-c", help="YAML config; without it, a demo stack with simulated engines."),
    host: str | None = typer.Option(None, help="Address to listen on (default 127.0.0.1)."),
    port: int | None = typer.Option(None, min=0, max=65535, help="Port to listen on (default 8080)."),
    workers: int | None = typer.Option(None, min=1, help="Worker processes (default 1)."),
    demo: bool = typer.Option(False, "--demo", help="With --config: add the demo stack's simulated engines "
                              "(and, if the config has no router, the default one) to the config's."),
) -> None:
    """Run the gateway. Without REDIS_URL an embedded Valkey server keeps state in .tollgate/."""
    from ..ops.serve import run

    try:
        run(config, host, port, workers, demo)
    except ConfigError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from None


def engine_sim(ctx: typer.Context) -> None:
    """Run a simulated engine with vLLM's OpenAI API and Prometheus metrics (``--help`` for its options)."""
    from enginesim.run import main

    main(ctx.args, prog="tollgate engine-sim")
