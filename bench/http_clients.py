"""Which HTTP client for the hot path? Requests/s of aiohttp and httpx against the same nginx mock.

One process pinned to core 0 sends N requests over 8 concurrent tasks through one pooled client;
nginx (static reply) runs on core 1. The ratio, not the absolute number, is what carries over.

    python bench/http_clients.py [--requests 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.overhead import BODY, ensure_tools, free_port, start_nginx, stop  # noqa: E402


async def run_aiohttp(url: str, total: int) -> float:
    import aiohttp

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as session:
        async def worker(count: int) -> None:
            for _ in range(count):
                async with session.post(url, data=BODY, headers={"content-type": "application/json"}) as response:
                    await response.read()

        return await _timed(worker, total)


async def run_httpx(url: str, total: int) -> float:
    import httpx

    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=64)) as client:
        async def worker(count: int) -> None:
            for _ in range(count):
                (await client.post(url, content=BODY, headers={"content-type": "application/json"})).read()

        return await _timed(worker, total)


async def _timed(worker, total: int, concurrency: int = 8) -> float:
    await worker(50)  # warm the pool
    started = time.perf_counter()
    await asyncio.gather(*(worker(total // concurrency) for _ in range(concurrency)))
    return total / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=20_000)
    args = parser.parse_args()
    ensure_tools()
    os.sched_setaffinity(0, {0})
    import uvloop

    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        nginx = start_nginx(Path(tmp), port)
        try:
            url = f"http://127.0.0.1:{port}/v1/chat/completions"
            results = {name: uvloop.run(fn(url, args.requests)) for name, fn in (("aiohttp", run_aiohttp), ("httpx", run_httpx))}
        finally:
            stop(nginx)
    for name, rps in results.items():
        print(f"{name:8s} {rps:8.0f} req/s  ({rps / results['httpx']:.1f}x httpx)")


if __name__ == "__main__":
    main()
