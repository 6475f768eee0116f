"""Every recorded call, counted in the Prometheus metrics from its ledger record."""

from __future__ import annotations

from ... import metrics
from .record import CallRecord, Part

_CUT_MID_STREAM = {"upstream_disconnected": "broken", "upstream_timeout": "timeout"}


def observe_call(record: CallRecord) -> None:
    """Count one recorded call: requests, latency, tokens, cost, escalations, cut streams."""
    model = record.model or (record.models[-1] if record.models else "")
    status = str(record.status)
    metrics.REQUESTS.labels(record.tenant, model, record.route, metrics.ENDPOINT_LABELS.get(record.endpoint, record.endpoint), status).inc()
    if record.escalated:
        metrics.ESCALATIONS.labels(record.tenant).inc()
    if not model:
        return
    seconds = record.latency_ms / 1000
    metrics.REQUEST_SECONDS.labels(model, "true" if record.stream else "false").observe(seconds)
    if record.upstream_ms is not None and not record.stream and record.status == 200:
        metrics.OVERHEAD_SECONDS.observe(max(seconds - record.upstream_ms / 1000, 0.0))
    if record.ttft_ms is not None:
        metrics.TTFT_SECONDS.labels(model).observe(record.ttft_ms / 1000)
    # Each upstream call's tokens and cost under its own model (an escalated cascade ran two).
    parts = record.parts or [Part(model, record.backend, record.prompt_tokens, record.cached_tokens, record.completion_tokens, record.cost_usd)]
    for part in parts:
        if part.prompt_tokens or part.completion_tokens:
            metrics.TOKENS.labels(record.tenant, part.model, "prompt").inc(part.prompt_tokens)
            metrics.TOKENS.labels(record.tenant, part.model, "cached").inc(part.cached_tokens)
            metrics.TOKENS.labels(record.tenant, part.model, "completion").inc(part.completion_tokens)
        metrics.COST_USD.labels(record.tenant, part.model).inc(part.cost_usd)
    if record.stream and record.error_code in _CUT_MID_STREAM and record.backend:
        metrics.UPSTREAM_ERRORS.labels(record.backend, _CUT_MID_STREAM[record.error_code]).inc()
