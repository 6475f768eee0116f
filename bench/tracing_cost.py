"""What tracing adds to one request, in one process (not a test): the pipeline over a mock engine
(tests/support/fakes.py), N requests with tracing off, then on (spans batched for export, the
exporter a no-op), alternating, medians of per-request wall time.

    python bench/tracing_cost.py [--requests 2000] [--rounds 5] [--sample-ratio 1.0]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult  # noqa: E402

from gateway.config import TracingConfig  # noqa: E402
from gateway.tracing import Tracing  # noqa: E402
from tests.support.fakes import harness  # noqa: E402

BODY = {"model": "cheap", "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 20}


class Discard(SpanExporter):
    def export(self, spans: object) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def per_request_us(traced: bool, requests: int, sample_ratio: float = 1.0) -> float:
    tracing = (Tracing(TracingConfig(enabled=True, sample_ratio=sample_ratio), Discard(), batch=True)  # batched, as deployed
               if traced else None)
    h = harness(tracing=tracing, moderation=True)

    async def run() -> float:
        for _ in range(50):  # warm-up
            await h.pipeline.serve(h.incoming(BODY))
        started = time.perf_counter()
        for _ in range(requests):
            await h.pipeline.serve(h.incoming(BODY))
        return (time.perf_counter() - started) / requests * 1e6

    spent = asyncio.run(run())
    if tracing is not None:
        tracing.close()
    return spent


def main() -> None:
    import logging

    logging.getLogger("opentelemetry").setLevel(logging.ERROR)  # "queue full" when export lags: not the point here
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--sample-ratio", type=float, default=1.0, help="tracing.sample_ratio of the traced runs")
    args = parser.parse_args()
    off, on = [], []
    for _ in range(args.rounds):
        off.append(per_request_us(False, args.requests))
        on.append(per_request_us(True, args.requests, args.sample_ratio))
    print(f"tracing off: {statistics.median(off):.1f} us/request (range {min(off):.1f}-{max(off):.1f})")
    print(f"tracing on:  {statistics.median(on):.1f} us/request (range {min(on):.1f}-{max(on):.1f})")
    print(f"added by tracing: {statistics.median(on) - statistics.median(off):+.1f} us/request")


if __name__ == "__main__":
    main()
