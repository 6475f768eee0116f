"""OpenTelemetry traces, caught by the SDK's in-memory exporter: one span per request, a child per
stage and per upstream call, GenAI attributes, and nothing of the prompt."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from gateway.config import TracingConfig
from gateway.errors import APIError
from gateway.pipeline import StreamedAnswer
from gateway.tracing import Tracing
from tests.support.fakes import EngineReply, engine, harness, settings

SECRET_PROMPT = "my password is hunter2, what is the capital of France?"
HELLO = {"model": "cheap", "messages": [{"role": "user", "content": SECRET_PROMPT}], "max_tokens": 20}


def _traced(**kwargs: Any) -> tuple[Any, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    return harness(tracing=Tracing(TracingConfig(enabled=True), exporter), **kwargs), exporter


def _by_name(exporter: InMemorySpanExporter) -> dict[str, Any]:
    return {span.name: span for span in exporter.get_finished_spans()}


def test_a_request_is_one_trace_with_a_span_per_stage_and_genai_attributes() -> None:
    h, exporter = _traced()
    asyncio.run(h.pipeline.serve(h.incoming(HELLO)))
    spans = _by_name(exporter)
    root = spans["chat cheap"]
    assert set(spans) == {"chat cheap", "moderation", "routing", "admission", "chat m-small", "pricing", "recording"}
    assert root.kind == SpanKind.SERVER and root.parent is None
    assert all(s.context.trace_id == root.context.trace_id for s in spans.values())
    assert all(s.parent.span_id == root.context.span_id for name, s in spans.items() if name != "chat cheap")
    [record] = h.accounting.records
    assert root.attributes["gen_ai.operation.name"] == "chat" and root.attributes["gen_ai.request.model"] == "cheap"
    assert root.attributes["gen_ai.response.model"] == "cheap"
    assert root.attributes["gen_ai.usage.input_tokens"] == record.prompt_tokens
    assert root.attributes["gen_ai.usage.output_tokens"] == record.completion_tokens == 6
    assert root.attributes["tollgate.tenant"] == "acme" and root.attributes["tollgate.route"] == "direct"
    assert root.attributes["tollgate.cost_usd"] == pytest.approx(record.cost_usd) and root.attributes["tollgate.escalated"] is False
    upstream = spans["chat m-small"]
    assert upstream.kind == SpanKind.CLIENT and upstream.attributes["gen_ai.system"] == "openai"
    assert upstream.attributes["gen_ai.request.model"] == "m-small" and upstream.attributes["tollgate.backend"] == "small"
    assert upstream.attributes["gen_ai.usage.output_tokens"] == 6
    # the stages run in order, inside the request's span
    order = ["moderation", "routing", "admission", "chat m-small", "pricing", "recording"]
    starts = [spans[name].start_time for name in order]
    assert starts == sorted(starts) and root.start_time <= starts[0] and spans["recording"].end_time <= root.end_time
    assert all(SECRET_PROMPT not in str(s.attributes) and "hunter2" not in str(s.attributes) for s in spans.values())


def test_a_stream_and_a_failure_are_traced_too() -> None:
    h, exporter = _traced()

    async def stream() -> None:
        answer = await h.pipeline.serve(h.incoming({**HELLO, "stream": True}))
        assert isinstance(answer, StreamedAnswer)
        async for _ in answer:
            pass
        answer.close()

    asyncio.run(stream())
    spans = _by_name(exporter)
    assert {"chat cheap", "chat m-small", "pricing", "recording"} <= set(spans)
    assert spans["chat cheap"].attributes["gen_ai.usage.output_tokens"] == 6
    exporter.clear()
    failing, failures = _traced(handlers={"small": engine(EngineReply(status=500))})
    with pytest.raises(APIError):
        asyncio.run(failing.pipeline.serve(failing.incoming(HELLO)))
    root = _by_name(failures)["chat cheap"]
    assert root.status.status_code == StatusCode.ERROR and root.attributes["http.response.status_code"] == 502
    refused, refusals = _traced()
    with pytest.raises(APIError):  # refused before routing: still one span, with the reason
        asyncio.run(refused.pipeline.serve(refused.incoming({"model": "nope", "messages": HELLO["messages"]})))
    assert _by_name(refusals)["chat nope"].attributes["error.type"] == "model_not_found"


def test_tracing_is_off_by_default_and_sampling_is_honoured() -> None:
    assert settings().tracing.enabled is False
    h, exporter = _traced()
    h.pipeline.tracing = Tracing(TracingConfig(enabled=True, sample_ratio=0.0), exporter)
    asyncio.run(h.pipeline.serve(h.incoming(HELLO)))
    assert not exporter.get_finished_spans() and h.accounting.records  # served and recorded, not traced
