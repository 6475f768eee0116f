"""Every recorded call, counted in the Prometheus metrics from its ledger record."""

from __future__ import annotations

from ... import metrics
from .record import CallRecord

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
    if record.prompt_tokens or record.completion_tokens:
        metrics.TOKENS.labels(record.tenant, model, "prompt").inc(record.prompt_tokens)
        metrics.TOKENS.labels(record.tenant, model, "cached").inc(record.cached_tokens)
        metrics.TOKENS.labels(record.tenant, model, "completion").inc(record.completion_tokens)
    metrics.COST_USD.labels(record.tenant, model).inc(record.cost_usd)
    if record.stream and record.error_code in _CUT_MID_STREAM and record.backend:
        metrics.UPSTREAM_ERRORS.labels(record.backend, _CUT_MID_STREAM[record.error_code]).inc()
