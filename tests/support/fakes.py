"""Stand-ins for the request path's I/O, so that the pipeline runs in a unit test: an engine that
answers through ``MockTransport``, an authenticator, and an accounting that keeps records in a list."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gateway.config import Settings, parse_settings
from gateway.errors import APIError
from gateway.pipeline import Incoming, Pipeline
from gateway.stages.accounting.admission import Ticket
from gateway.stages.accounting.limits import CallerLimits, LimitSet
from gateway.stages.accounting.record import CallRecord
from gateway.stages.auth import Caller
from gateway.stages.moderation import Moderation
from gateway.stages.pricing import Pricing
from gateway.stages.router import Router
from gateway.upstream.forwarder import Forwarder
from gateway.upstream.pool import UpstreamPool
from gateway.upstream.transport import MockHandler, MockResponse, MockTransport, TransportError


@dataclass
class EngineReply:
    """How the mock engine answers: its text, how sure it sounds, and faults."""

    text: str = "Paris is the capital of France."
    logprob: float = -0.05  # per token: exp(-0.05) = 0.95, a sure answer
    status: int = 200
    error: dict[str, Any] | None = None
    usage: bool = True
    cut_after: int | None = None  # pieces of the body before the connection drops
    transport_error: TransportError | None = None
    finish_reason: str = "stop"
    delay_s: float = 0.0  # before anything is sent back (a hung engine: longer than the test waits)
    stall_after: int | None = None  # pieces of the body before the engine stops sending


def _words(text: str) -> list[str]:
    words = text.split(" ")
    return [w if i == 0 else " " + w for i, w in enumerate(words)]


def engine(reply: EngineReply | Callable[[dict[str, Any]], EngineReply] | None = None) -> MockHandler:
    """A ``MockTransport`` handler speaking vLLM's OpenAI API (one token per word)."""
    reply = reply or EngineReply()

    async def handle(url: str, body: bytes) -> MockResponse:
        request = json.loads(body) if body else {}
        answer = reply(request) if callable(reply) else reply
        if answer.delay_s:
            await asyncio.sleep(answer.delay_s)
        if answer.transport_error is not None:
            raise answer.transport_error
        if answer.status != 200:
            return MockResponse(answer.status, [json.dumps(answer.error or {"error": {"message": "no"}}).encode()])
        chat = url.endswith("/chat/completions")
        words = _words(answer.text)
        usage = {"prompt_tokens": 12, "completion_tokens": len(words), "total_tokens": 12 + len(words),
                 "prompt_tokens_details": {"cached_tokens": 0}}
        logprobs = bool(request.get("logprobs"))
        if not request.get("stream"):
            choice: dict[str, Any] = {"index": 0, "finish_reason": answer.finish_reason}
            if chat:
                choice["message"] = {"role": "assistant", "content": answer.text}
                choice["logprobs"] = {"content": [{"token": w, "logprob": answer.logprob} for w in words]} if logprobs else None
            else:
                choice["text"] = answer.text
                choice["logprobs"] = {"tokens": words, "token_logprobs": [answer.logprob] * len(words)} if logprobs else None
            whole = {"id": "cmpl-mock", "object": "chat.completion" if chat else "text_completion", "created": 1,
                     "model": request.get("model"), "choices": [choice]}
            if answer.usage:
                whole["usage"] = usage
            raw = json.dumps(whole).encode()
            pieces = [raw[: len(raw) // 2], raw[len(raw) // 2:]]
            return MockResponse(200, pieces, fail_after=answer.cut_after, stall_after=answer.stall_after)
        events = []
        for word in words:
            choice = {"index": 0, "finish_reason": None}
            if chat:
                choice["delta"] = {"content": word}
                choice["logprobs"] = {"content": [{"token": word, "logprob": answer.logprob}]} if logprobs else None
            else:
                choice["text"] = word
                choice["logprobs"] = {"tokens": [word], "token_logprobs": [answer.logprob]} if logprobs else None
            events.append({"id": "chunk-mock", "object": "x", "created": 7, "model": request.get("model"), "choices": [choice]})
        end = {"index": 0, "finish_reason": answer.finish_reason, **({"delta": {}} if chat else {"text": ""})}
        events.append({"id": "chunk-mock", "object": "x", "created": 7, "model": request.get("model"), "choices": [end]})
        if answer.usage and (request.get("stream_options") or {}).get("include_usage"):
            events.append({"id": "chunk-mock", "object": "x", "created": 7, "model": request.get("model"), "choices": [],
                           "usage": usage})
        pieces = [b"data: " + json.dumps(e).encode() + b"\n\n" for e in events] + [b"data: [DONE]\n\n"]
        return MockResponse(200, pieces, fail_after=answer.cut_after, stall_after=answer.stall_after)

    return handle


class FakeAuth:
    """Every bearer token is a key of tenant ``acme`` (``admin`` is refused as unknown, as no key)."""

    def __init__(self, limits: CallerLimits | None = None, moderation: str | None = None) -> None:
        self.limits = limits or CallerLimits(LimitSet(), LimitSet())
        self.moderation = moderation

    async def authenticate(self, authorization: str | None) -> Caller:
        if not authorization:
            raise APIError(401, "missing API key", code="invalid_api_key")
        return Caller("key1", "acme", "tenant", self.limits, self.moderation)


@dataclass
class FakeAccounting:
    """Admits everything and keeps each record (with the ticket it settles) in order."""

    records: list[CallRecord] = field(default_factory=list)
    refuse: APIError | None = None

    async def admit(self, *args: Any, **kwargs: Any) -> Ticket:
        if self.refuse is not None:
            raise self.refuse
        return Ticket()

    async def record(self, record: CallRecord, ticket: Ticket | None) -> None:
        self.records.append(record)

    def record_soon(self, record: CallRecord, ticket: Ticket | None) -> None:
        self.records.append(record)


def settings(**extra: Any) -> Settings:
    """Two self-hosted backends (cheap and flagship) and an API backend with two replicas."""
    document: dict[str, Any] = {
        "redis_url": "redis://127.0.0.1:1/0",
        "backends": [
            {"name": "small", "kind": "vllm", "urls": ["http://small:8000/v1"],
             "deployment": {"model": "llama-3.1-8b", "gpu": "l40s", "precision": "fp8"}},
            {"name": "large", "kind": "vllm", "urls": ["http://large:8000/v1"],
             "deployment": {"model": "llama-3.1-70b", "gpu": "h100-sxm", "gpus": 4}},
            {"name": "api", "kind": "openai", "urls": ["http://api-a:80/v1", "http://api-b:80/v1"], "api_key": "sk-secret-provider-key",
             "prices": {"mini": {"input": 1.0, "output": 2.0}}},
        ],
        "models": [
            {"name": "cheap", "tier": "cheap", "targets": [{"backend": "small", "model": "m-small"}]},
            {"name": "flagship", "tier": "flagship", "targets": [{"backend": "large", "model": "m-large"}]},
            {"name": "mini", "targets": [{"backend": "api"}]},
        ],
        **extra,
    }
    return parse_settings(document, {})


@dataclass
class Harness:
    pipeline: Pipeline
    accounting: FakeAccounting
    transports: dict[str, MockTransport]
    pool: UpstreamPool

    def incoming(self, body: dict[str, Any], endpoint: str = "/chat/completions", key: str | None = "Bearer k",
                 cache_control: str | None = None) -> Incoming:
        async def read_body() -> dict[str, Any]:
            return body

        return Incoming("00000000-0000-4000-8000-000000000000", endpoint, key, cache_control, read_body)


class FakeLabels:
    """Keeps the router training labels the pipeline hands over: (confidence, reason) per call."""

    def __init__(self) -> None:
        self.kept: list[tuple[float | None, str | None]] = []

    def keep(self, body: dict[str, Any], tenant: str, confidence: float | None, reason: str | None) -> None:
        self.kept.append((confidence, reason))


def harness(handlers: dict[str, Any] | None = None, config: Settings | None = None, *, auth: FakeAuth | None = None,
            accounting: FakeAccounting | None = None, moderation: bool = True,
            labels: FakeLabels | None = None, tracing: Any = None) -> Harness:
    """A pipeline over mock engines: ``handlers`` by backend name (default: a sure answer everywhere)."""
    config = config or settings()
    transports = {b.name: MockTransport((handlers or {}).get(b.name) or engine()) for b in config.backends}
    pool = UpstreamPool(config, transports)  # type: ignore[arg-type]
    accounting = accounting or FakeAccounting()
    pipeline = Pipeline(
        auth=auth or FakeAuth(),  # type: ignore[arg-type]
        router=Router(pool, config.router, redis=None),  # type: ignore[arg-type]
        forwarder=Forwarder(pool), pricing=Pricing(config, pool.average_batch), accounting=accounting,  # type: ignore[arg-type]
        request_timeout_s=config.server.request_timeout_s,
        moderation=Moderation(config.moderation) if moderation else None,
        labels=labels,  # type: ignore[arg-type]
        tracing=tracing,
    )
    return Harness(pipeline, accounting, transports, pool)
