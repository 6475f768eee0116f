"""Running one simulator process until it is interrupted (or its parent goes away)."""

from __future__ import annotations

import asyncio
import signal

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
