"""Prometheus metrics of the gateway.

With several uvicorn workers each process keeps its own values; ``tollgate serve`` then sets
``PROMETHEUS_MULTIPROC_DIR`` so that ``/metrics`` (answered by any worker) sums all of them.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1)

REQUESTS = Counter(
    "tollgate_requests_total", "Requests answered, by tenant, model, route, endpoint and status.",
    ["tenant", "model", "route", "endpoint", "status"],
)
REJECTIONS = Counter(
    "tollgate_limit_rejections_total", "Requests refused by a rate limit or budget, by tenant and limit.",
    ["tenant", "limit"],
)
ESCALATIONS = Counter(
    "tollgate_escalations_total", "Cascade calls escalated from the cheap model to the flagship.", ["tenant"],
)
CACHE_HITS = Counter("tollgate_cache_hits_total", "Requests answered from the response cache.", ["tenant", "kind"])
MODERATION = Counter(
    "tollgate_moderation_total", "Moderation findings, by tenant, direction, category and the action taken.",
    ["tenant", "direction", "category", "action"],
)
STORE_ERRORS = Counter(
    "tollgate_store_errors_total", "Redis operations that failed, by feature (auth, limits, ledger).", ["feature"],
)
LEDGER_SPOOLED = Counter(
    "tollgate_ledger_spooled_total", "Ledger records written to the local spool because Redis was unreachable.",
)
TOKENS = Counter(
    "tollgate_tokens_total", "Tokens billed, by tenant, model and kind (prompt, cached, completion).",
    ["tenant", "model", "kind"],
)
COST_USD = Counter(
    "tollgate_cost_usd_total", "Priced cost of calls in USD, by tenant and model.", ["tenant", "model"],
)
UPSTREAM_ERRORS = Counter(
    "tollgate_upstream_failures_total",
    "Upstream attempts that failed (connect, timeout, http_<status>, broken), and streams cut after their first byte.",
    ["backend", "reason"],
)
REQUEST_SECONDS = Histogram(
    "tollgate_request_duration_seconds", "Whole request time at the gateway (streams: until the end).",
    ["model", "stream"], buckets=_LATENCY_BUCKETS,
)
UPSTREAM_TTFB_SECONDS = Histogram(
    "tollgate_upstream_first_byte_seconds", "Time to the upstream's first byte (streams: first event).",
    ["backend"], buckets=_LATENCY_BUCKETS,
)
TTFT_SECONDS = Histogram(
    "tollgate_time_to_first_token_seconds", "Streams: time from the request to the first token sent.",
    ["model"], buckets=_LATENCY_BUCKETS,
)
OVERHEAD_SECONDS = Histogram(
    "tollgate_overhead_seconds", "Gateway time per non-streamed request, upstream time excluded.",
    buckets=_OVERHEAD_BUCKETS,
)


def render() -> tuple[bytes, str]:
    """The exposition text, merged over worker processes when running multi-process."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    from prometheus_client import REGISTRY

    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


ENDPOINT_LABELS = {"/chat/completions": "chat", "/completions": "completions", "/embeddings": "embeddings"}


def count_unauthenticated(endpoint: str, status: int) -> None:
    """A request refused before its tenant was known (it has no ledger record)."""
    REQUESTS.labels("", "", "", ENDPOINT_LABELS.get(endpoint, endpoint), str(status)).inc()
