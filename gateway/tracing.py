"""OpenTelemetry traces (opt-in, ``tracing:`` in the config): one span per request, with a child
span for each stage.

The spans are built when the call is recorded, from values the pipeline already carries: when the
request arrived, the stage times ``Marks`` holds (taken only while tracing is on), each upstream
call's own time on its replica (``Served.ran``), the pricing and recording times, and the ledger
record (tokens, cost, route, escalation). OpenTelemetry takes explicit start and end times, so a
finished request becomes a trace in one go and the request path holds no open spans; with tracing
off, it pays one ``is None`` test per stage.

Attributes follow the OpenTelemetry GenAI semantic conventions (``gen_ai.operation.name``,
``gen_ai.system`` and its newer name ``gen_ai.provider.name``, ``gen_ai.request.model``,
``gen_ai.response.model``, ``gen_ai.usage.input_tokens`` / ``output_tokens``), with Tollgate's own
under ``tollgate.*`` (tenant, key, route, cost, flagship cost, escalation, cache, moderation).
Prompts and answers are never put in a span. Times: ``time.perf_counter`` and ``time.monotonic``
read the same clock on Linux and macOS; an offset taken when the trace is built turns them into
wall-clock time.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .call import Arrival, Marks, Span
from .config import TracingConfig
from .stages.accounting.record import CallRecord
from .upstream.forwarder import Served

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter

OPERATIONS = {"/chat/completions": "chat", "/completions": "text_completion", "/embeddings": "embeddings"}


class Tracing:
    """An OTLP (HTTP/protobuf) exporter behind a batching processor, or any exporter a test gives."""

    def __init__(self, config: TracingConfig, exporter: SpanExporter | None = None, batch: bool | None = None) -> None:
        """``exporter``: a test's (sent at once, unless ``batch``); None: OTLP to the config's endpoint, batched."""
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
        from opentelemetry.sdk.trace.sampling import TraceIdRatioBased
        from opentelemetry.trace import SpanKind, Status, StatusCode, set_span_in_context

        self._kind, self._status, self._code, self._in_context = SpanKind, Status, StatusCode, set_span_in_context
        self.provider = TracerProvider(resource=Resource.create({"service.name": config.service_name}),
                                       sampler=TraceIdRatioBased(config.sample_ratio))
        if exporter is None:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporter = OTLPSpanExporter(config.endpoint, headers=config.headers)
            batch = True
        self.provider.add_span_processor(BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter))
        self.tracer = self.provider.get_tracer("tollgate")

    def emit(self, arrival: Arrival, record: CallRecord, served: Sequence[Served], marks: Marks | None,
             pricing: Span | None, recording: Span) -> None:
        """The finished request as a trace: the request's span and its stages' children."""
        offset = time.time() - time.perf_counter()
        ns = lambda t: int((t + offset) * 1e9)  # noqa: E731
        operation = OPERATIONS.get(arrival.endpoint, arrival.endpoint.strip("/"))
        root = self.tracer.start_span(f"{operation} {record.requested_model}"[:120], kind=self._kind.SERVER,
                                      start_time=ns(arrival.started))
        if not root.is_recording():  # not sampled: nor would its children be; build none of it
            return
        root.set_attributes(_request_attributes(record, operation))
        if record.status >= 500:
            root.set_status(self._status(self._code.ERROR, record.error_code or str(record.status)))
        context = self._in_context(root)

        def child(name: str, span: Span, attributes: dict[str, Any] | None = None, kind: Any = None) -> None:
            started = self.tracer.start_span(name, context=context, start_time=ns(span[0]), attributes=attributes,
                                             kind=kind or self._kind.INTERNAL)
            started.end(end_time=ns(span[1]))

        for name, span in (("moderation", marks.moderation if marks else None), ("routing", marks.routing if marks else None),
                           ("admission", marks.admission if marks else None)):
            if span is not None:
                child(name, span)
        for call in served:
            if call.ran is not None:
                child(f"{operation} {call.upstream_model}"[:120], call.ran, _upstream_attributes(call, operation),
                      self._kind.CLIENT)
        if pricing is not None:
            child("pricing", pricing, {"tollgate.cost_usd": record.cost_usd, "tollgate.cost_source": record.cost_source})
        child("recording", recording)
        root.end(end_time=ns(recording[1]))

    def close(self) -> None:
        """Send what is still batched (at shutdown)."""
        self.provider.shutdown()


def _request_attributes(record: CallRecord, operation: str) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": operation,
        "gen_ai.request.model": record.requested_model,
        "gen_ai.usage.input_tokens": record.prompt_tokens,
        "gen_ai.usage.output_tokens": record.completion_tokens,
        "http.response.status_code": record.status,
        "tollgate.request_id": record.request_id,
        "tollgate.tenant": record.tenant,
        "tollgate.key_id": record.key_id,
        "tollgate.route": record.route,
        "tollgate.cost_usd": record.cost_usd,
        "tollgate.escalated": record.escalated,
        "tollgate.cache": record.cache,
        "tollgate.moderation": record.moderation,
    }
    if record.model:
        attributes["gen_ai.response.model"] = record.model
    if record.flagship_cost_usd is not None:
        attributes["tollgate.flagship_cost_usd"] = record.flagship_cost_usd
    if record.escalation_reason:
        attributes["tollgate.escalation_reason"] = record.escalation_reason
    if record.error_code:
        attributes["error.type"] = record.error_code
    return attributes


def _upstream_attributes(call: Served, operation: str) -> dict[str, Any]:
    usage = call.usage or {}
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": operation,
        "gen_ai.system": "openai",  # the API the engines speak (vLLM, SGLang, TGI, llama.cpp: OpenAI-compatible)
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": call.upstream_model,
        "gen_ai.response.model": call.upstream_model,
        "tollgate.backend": call.backend,
        "tollgate.public_model": call.model,
    }
    for name, key in (("gen_ai.usage.input_tokens", "prompt_tokens"), ("gen_ai.usage.output_tokens", "completion_tokens")):
        if isinstance(usage.get(key), int):
            attributes[name] = usage[key]
    if call.batch is not None:
        attributes["tollgate.batch"] = call.batch
    return attributes
