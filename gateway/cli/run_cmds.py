"""Long-running commands: the gateway and the engine simulator."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path
from typing import Optional

import typer

from ..config import ConfigError


def serve(
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="YAML config; without it, a demo stack with simulated engines."),
    host: Optional[str] = typer.Option(None, help="Address to listen on (default 127.0.0.1)."),
    port: Optional[int] = typer.Option(None, min=0, max=65535, help="Port to listen on (default 8080)."),
    workers: Optional[int] = typer.Option(None, min=1, help="Worker processes (default 1)."),
) -> None:
    """Run the gateway. Without REDIS_URL an embedded Valkey server keeps state in .tollgate/."""
    from ..serve import run

    try:
        run(config, host, port, workers)
    except ConfigError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from None


def engine_sim(
    model: str = typer.Option("sim-model", help="Model name the engine serves."),
    preset: str = typer.Option("small", help="small (8B on an L40S) or large (70B on 4 x H100): timed by the pricing model."),
    host: str = typer.Option("127.0.0.1"),
    port: int = typer.Option(8001, min=0, max=65535),
    max_num_seqs: int = typer.Option(256, min=1, help="Most sequences decoded together (vLLM --max-num-seqs)."),
    kv_capacity_tokens: Optional[int] = typer.Option(None, min=1, help="KV-cache capacity in tokens (default: the preset's GPUs)."),
    time_scale: float = typer.Option(1.0, min=0.0, help="Multiply all simulated durations (0 = no waiting)."),
    error_rate: float = typer.Option(0.0, min=0.0, max=1.0, help="Share of requests answered with HTTP 500."),
    extra_latency_ms: float = typer.Option(0.0, min=0.0, help="Extra delay before the first byte."),
    drop_stream_after_tokens: int = typer.Option(0, min=0, help="Cut answers after this many tokens (0 = never)."),
    parent_pid: Optional[int] = typer.Option(None, help="Exit when this process is gone."),
) -> None:
    """Run a simulated engine with vLLM's OpenAI API and Prometheus metrics."""
    from enginesim.presets import PRESETS, timing_for
    from enginesim.run import serve as run_sim
    from enginesim.server import Faults, SimSettings

    if preset not in PRESETS:
        typer.echo(f"error: unknown preset {preset!r}; choose from {', '.join(PRESETS)}", err=True)
        raise typer.Exit(2)
    timing, capacity = timing_for(PRESETS[preset])
    settings = replace(
        SimSettings(), model=model, host=host, port=port, max_num_seqs=max_num_seqs,
        kv_capacity_tokens=kv_capacity_tokens or capacity, time_scale=time_scale,
        confidence=PRESETS[preset].confidence, timing=timing,
    )
    faults = Faults(error_rate=error_rate, extra_latency_ms=extra_latency_ms, drop_stream_after_tokens=drop_stream_after_tokens)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(run_sim(settings, faults, parent_pid))
