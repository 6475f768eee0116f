"""How long pricing one call takes on the request path (target: at most 20 us).

    python bench/pricing_speed.py

Prices the same call many times with the gateway's Pricing (usage normalization, pricer lookup,
operating point, the call's own price and the flagship counterfactual) and reports percentiles
of batches of 1,000 calls, per call. The last row is what the request path runs: ``price_calls``,
which also reads the serving replica's and the flagship's load windows (a minute of one-second
buckets each, full).
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gateway.config import parse_settings  # noqa: E402
from gateway.stages.pricing import Pricing  # noqa: E402
from gateway.upstream.forwarder import Served  # noqa: E402
from gateway.upstream.pool import UpstreamPool  # noqa: E402

SETTINGS = {
    "backends": [
        {"name": "gpu", "kind": "vllm", "urls": ["http://a/v1"], "deployment": {"model": "llama-3.1-70b", "gpu": "h100-sxm", "gpus": 4}},
        {"name": "moe", "kind": "vllm", "urls": ["http://b/v1"], "deployment": {"model": "mixtral-8x7b", "gpu": "h100-sxm", "gpus": 2}},
        {"name": "api", "kind": "openai", "urls": ["https://c/v1"], "prices": {"gpt-4o-mini": {"input": 0.15, "output": 0.6}}},
    ],
    "models": [{"name": "big", "tier": "flagship", "targets": [{"backend": "gpu"}]},
               {"name": "mix", "targets": [{"backend": "moe"}]},
               {"name": "mini", "targets": [{"backend": "api", "model": "gpt-4o-mini"}]}],
}
USAGE = {"prompt_tokens": 1200, "completion_tokens": 300, "prompt_tokens_details": {"cached_tokens": 1024}}


def per_call_us(fn, batches: int = 200, batch: int = 1000) -> list[float]:
    results = []
    for _ in range(batches):
        started = time.perf_counter()
        for _ in range(batch):
            fn()
        results.append((time.perf_counter() - started) / batch * 1e6)
    return sorted(results)


def main() -> None:
    settings = parse_settings(SETTINGS, {})
    pool = UpstreamPool(settings)
    billing = Pricing(settings, pool.average_batch)
    now = time.monotonic()
    for backend in pool.backends.values():  # a minute of traffic in every replica's window
        window = backend.replicas[0].window
        for second in range(61):
            window.end(window.begin(now - 61 + second), now - 60.5 + second)
    replica = pool.backends["moe"].replicas[0]
    served = Served("mix", "moe", "mix", replica, USAGE, 12.5)
    cases = {
        "self-hosted dense (70B, TP4), at batch 48": lambda: billing.price("gpu", "big", USAGE, 48),
        "self-hosted MoE (Mixtral, TP2), at batch 48": lambda: billing.price("moe", "mix", USAGE, 48),
        "API price table": lambda: billing.price("api", "gpt-4o-mini", USAGE, None),
        "price_calls: MoE call at its own batch, flagship from its load window": lambda: billing.price_calls((served,)),
    }
    print("| call | p50 us | p99 us |\n|---|---:|---:|")
    for name, fn in cases.items():
        samples = per_call_us(fn)
        print(f"| {name} | {statistics.median(samples):.1f} | {samples[int(len(samples) * 0.99) - 1]:.1f} |")


if __name__ == "__main__":
    main()
