"""Running one simulator process until it is interrupted (or its parent goes away).

``python -m enginesim`` and ``tollgate engine-sim`` both end up in ``main``.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Callable
from dataclasses import replace

from .engine import DEFAULT_MAX_BATCHED_TOKENS
from .presets import PRESETS, timing_for
from .server import Faults, SimSettings, Simulator, watch_parent


async def serve(settings: SimSettings, faults: Faults, parent_pid: int | None = None) -> None:
    simulator = Simulator(settings, faults)
    await simulator.start()
    print(f"enginesim: serving {settings.model} on http://{settings.host}:{settings.port}/v1", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    watcher = loop.create_task(watch_parent(parent_pid)) if parent_pid else None
    try:
        await stop.wait()
    finally:
        if watcher is not None:
            watcher.cancel()
        await simulator.stop()


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError("must be between 0 and 1")
    return value


def _at_least(low: float, kind: Callable[[str], float] = float) -> Callable[[str], float]:
    def parse(text: str) -> float:
        value = kind(text)
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low:g}")
        return value
    return parse


def parser(prog: str = "enginesim") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description="Run a simulated engine with vLLM's OpenAI API and Prometheus metrics.")
    p.add_argument("--model", default="sim-model", help="Model name the engine serves.")
    p.add_argument("--preset", default="small", choices=sorted(PRESETS),
                   help="small (8B on an L40S) or large (70B on 4 x H100): timed by the pricing model.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=_at_least(0, int), default=8001)
    p.add_argument("--max-num-seqs", type=_at_least(1, int), default=256, help="Most sequences decoded together (vLLM --max-num-seqs).")
    p.add_argument("--max-num-batched-tokens", type=_at_least(1, int), default=DEFAULT_MAX_BATCHED_TOKENS,
                   help="Token budget of one step, decodes and prompt chunks together (vLLM --max-num-batched-tokens).")
    p.add_argument("--kv-capacity-tokens", type=_at_least(1, int), default=None, help="KV-cache capacity in tokens (default: the preset's GPUs).")
    p.add_argument("--time-scale", type=_at_least(0.0), default=1.0, help="Multiply all simulated durations (0 = no waiting).")
    p.add_argument("--error-rate", type=_fraction, default=0.0, help="Share of requests answered with HTTP 500.")
    p.add_argument("--extra-latency-ms", type=_at_least(0.0), default=0.0, help="Extra delay before the first byte.")
    p.add_argument("--drop-stream-after-tokens", type=_at_least(0, int), default=0, help="Cut answers after this many tokens (0 = never).")
    p.add_argument("--parent-pid", type=int, default=None, help="Exit when this process is gone.")
    return p


def main(argv: list[str] | None = None, prog: str = "enginesim") -> None:
    args = parser(prog).parse_args(sys.argv[1:] if argv is None else argv)
    preset = PRESETS[args.preset]
    timing, capacity = timing_for(preset)
    settings = replace(
        SimSettings(), model=args.model, host=args.host, port=args.port, max_num_seqs=args.max_num_seqs,
        max_num_batched_tokens=args.max_num_batched_tokens, kv_capacity_tokens=args.kv_capacity_tokens or capacity, time_scale=args.time_scale,
        sureness=preset.sureness, timing=timing,
    )
    faults = Faults(error_rate=args.error_rate, extra_latency_ms=args.extra_latency_ms,
                    drop_stream_after_tokens=args.drop_stream_after_tokens)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(serve(settings, faults, args.parent_pid))
