"""How long the router's decision takes on the request path, by prompt size (not a test).

Times ``gateway.stages.router.Router.route`` (prompt extraction, featurization with word vectors, the
dot product and the threshold rule) on chat bodies from 100 characters to 200 KB, on one pinned
core, and reports p50 and p99; then the same with a shadow router deployed (two scores per call).
The garbage collector is set as in every gateway worker (``tune_garbage_collector``); ``--default-gc``
times it with Python's defaults instead. Target (issues #4, #16): p99 at most 200 us. Writes a table
to docs/router.md.

    python bench/router_decision.py [--iterations 3000] [--no-write] [--default-gc]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.doc_sections import write_section  # noqa: E402
from bench.timing import percentiles_us  # noqa: E402

SIZES = (100, 330, 2_000, 20_000, 200_000)


def _prompt(chars: int, rng: random.Random) -> str:
    words = "explain how the cache handles a prefix when the batch grows and why the cost per token falls".split()
    text = []
    while sum(len(w) + 1 for w in text) < chars:
        text.append(rng.choice(words))
    return " ".join(text)[:chars] + "?"


def measure(iterations: int, tuned_gc: bool = True) -> list[tuple[int, float, float, float, float]]:
    from dataclasses import replace

    from gateway.config import parse_settings
    from gateway.stages.router import Router
    from gateway.stages.router_deployments import Deployed
    from gateway.upstream.pool import UpstreamPool
    from router.train import fit
    from tests.support.router_data import synthetic_examples

    with tempfile.TemporaryDirectory() as tmp:
        artifact = Path(tmp) / "router.json"
        fit(synthetic_examples(2000), regularization=1.0, embedding_scale=1.0).save(artifact)  # the slower kind
        settings = parse_settings({
            "backends": [{"name": "b", "urls": ["http://127.0.0.1:9/v1"]}],
            "models": [{"name": "cheap", "targets": [{"backend": "b"}]}, {"name": "flagship", "targets": [{"backend": "b"}]}],
            "router": {"artifact": str(artifact), "cheap": "cheap", "flagship": "flagship"},
        })
        router = Router(UpstreamPool(settings), settings.router, redis=None)  # type: ignore[arg-type]
        shadowed = Router(UpstreamPool(settings), settings.router, redis=None)  # type: ignore[arg-type]
    assert router.configured is not None and router.configured.model.features.embedding_scale
    if tuned_gc:
        from gateway.http.app import tune_garbage_collector

        tune_garbage_collector()  # as every worker does once it has started (young collections rarer)
    shadowed.deployments = replace(shadowed.deployments, shadow=Deployed("shadow", router.configured.model))
    rng = random.Random(0)
    rows = []
    for size in SIZES:
        body = {"model": "auto", "messages": [{"role": "system", "content": "You are helpful."},
                                              {"role": "user", "content": _prompt(size, rng)}]}
        p50, p99 = percentiles_us(lambda body=body: router.route("auto", body, "tenant", True), iterations)
        both50, both99 = percentiles_us(lambda body=body: shadowed.route("auto", body, "tenant", True), iterations)
        rows.append((size, p50, p99, both50, both99))
    return rows


def _busy(rounds: int) -> int:
    total = 0
    for i in range(rounds):
        total += i * i
    return total


def control(target_us: float, iterations: int) -> tuple[float, float]:
    """p50 and p99 of a fixed pure-Python loop sized to take about ``target_us``: the same work every
    time, so whatever its p99 adds to its p50 is the machine's (interrupts, the hypervisor), not the
    code's. Measured in the same run, it says how far a decision's p99 can be read on this machine."""
    probe, _ = percentiles_us(lambda: _busy(5000), 300)
    rounds = max(1, round(5000 * target_us / probe))
    return percentiles_us(lambda: _busy(rounds), iterations)


def table(rows: list[tuple[int, float, float, float, float]]) -> str:
    lines = ["| prompt size (chars) | p50 us | p99 us | with a shadow: p50 us | p99 us |", "|---:|---:|---:|---:|---:|"]
    lines += [f"| {size:,} | {p50:.0f} | {p99:.0f} | {both50:.0f} | {both99:.0f} |" for size, p50, p99, both50, both99 in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=3000)
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--default-gc", action="store_true",
                        help="Python's default collector settings instead of the gateway workers' (gateway.http.app).")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {0})
    rows = measure(args.iterations, tuned_gc=not args.default_gc)
    decision50, decision99 = next((p50, p99) for size, p50, p99, _, _ in rows if size == 2_000)
    busy50, busy99 = control(decision50, args.iterations)
    result = (f"{table(rows)}\n\nControl, same run: a fixed pure-Python loop of the same p50 ({busy50:.0f} us) has a "
              f"p99 of {busy99:.0f} us; the 2,000-character decision {decision50:.0f} / {decision99:.0f} us. What the "
              f"loop's p99 adds to its p50 ({busy99 - busy50:.0f} us) is this machine's, not the code's.")
    print(result)
    if not args.no_write:
        write_section("router.md", "decision", f"Measured {time.strftime('%Y-%m-%d')} on one pinned core.\n\n{result}",
                      "\n## Decision time on the request path\n\n`python bench/router_decision.py`: the whole decision "
                      "(prompt extraction, features, score, threshold) by prompt size. Target: p99 at most 200 us.\n\n")


if __name__ == "__main__":
    main()
