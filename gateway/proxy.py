"""Forwarding one validated call upstream and shaping the answer for the client.

The client's JSON is forwarded as it came, with ``model`` set to the backend's name for it;
answers carry the public model name back. Streams always ask the upstream for usage (the
gateway needs it to bill) and drop that chunk again when the client did not ask for it.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, AsyncIterator, Awaitable, Callable

import aiohttp
import orjson
from starlette.responses import Response, StreamingResponse

from . import metrics, sse, tokens
from .billing import Billing, Price
from .errors import APIError
from .moderation import moderate_chunk
from .upstream import Attempt, Route, UpstreamPool

if TYPE_CHECKING:
    from cache.exact import StreamAssembler
    from moderation.engine import Verdict
    from moderation.stream import StreamFilter

    from .accounting.admission import Ticket
    from .routing import Decision


@dataclass
class Call:
    """What the gateway knows about one call while serving it; the ledger record is made from it."""

    request_id: str
    tenant: str
    endpoint: str  # "/chat/completions" or "/completions"
    key_id: str = ""
    body: dict = field(default_factory=dict)
    requested_model: str = ""
    route: Route | None = None
    route_kind: str = "direct"  # direct, router or cascade
    decision: Decision | None = None
    stream: bool = False
    ticket: Ticket | None = None
    reserved_tokens: int = 0
    started: float = field(default_factory=time.perf_counter)
    wall_started: float = field(default_factory=time.time)
    usage: dict | None = None
    upstream_seconds: float = 0.0
    ttft_s: float | None = None
    price: Price | None = None
    backend: str = ""
    replica: str = ""
    models_run: list[str] = field(default_factory=list)
    answered: bool = False
    status: int = 200
    error_code: str | None = None
    escalated: bool = False  # a cascade sent it on to the flagship
    confidence: float | None = None  # the cascade's confidence in the cheap answer
    strip_logprobs: bool = False  # the gateway asked for logprobs the client did not want
    prior_price: Price | None = None  # an escalated cascade: what the cheap call cost
    prior_usage: dict | None = None
    moderation: Verdict | None = None  # what the checks found, in and out
    check_answer: Callable[[dict], Awaitable[dict]] | None = None  # output moderation of whole answers
    stream_filter: StreamFilter | None = None  # output moderation of streams
    cache_key: str | None = None  # the exact cache: where this call's answer is (or goes)
    cache_read: bool = False
    cache_hit: bool = False
    cache_saved_usd: float = 0.0  # a hit: what the original call cost
    cache_flagship_usd: float | None = None
    assembler: StreamAssembler | None = None  # rebuilds a streamed answer for the cache
    on_answer: Callable[[dict], None] | None = None  # the whole answer, once it is final
    finish: Callable[[], None] | None = None  # records the call when a stream ends
    ended: bool = False  # a stream's end has been billed and recorded

    def served_by(self, attempt: Attempt) -> None:
        self.backend, self.replica = attempt.target.backend.name, attempt.replica.url
        if self.route is not None:
            self.models_run.append(self.route.model)


def settle(pool: UpstreamPool, billing: Billing, call: Call, attempt: Attempt) -> Price:
    """Price the call from its usage at the replica's operating point, and count it."""
    assert call.route is not None
    flagship = pool.backends.get(billing.flagship_backend or "")
    flagship_load = next((r.load for r in flagship.replicas if r.load is not None), None) if flagship else None
    price = billing.price(attempt.target.backend.name, attempt.target.upstream_model, call.usage,
                          attempt.replica.load, flagship_load)
    metrics.record_usage(call.tenant, call.route.model, call.usage)
    metrics.COST_USD.labels(call.tenant, call.route.model).inc(price.cost_usd)
    prior = call.prior_price  # an escalated cascade pays for both calls; flagship-only makes the second
    call.price = price if prior is None else Price(prior.cost_usd + price.cost_usd, price.flagship_cost_usd, price.source)
    return call.price


def _answer_headers(call: Call, attempt: Attempt) -> dict[str, str]:
    headers = {"x-tollgate-model": call.route.model, "x-tollgate-backend": attempt.target.backend.name}
    if call.price is not None:
        headers["x-tollgate-cost-usd"] = f"{call.price.cost_usd:.8f}"
        headers["x-tollgate-cost-source"] = call.price.source
        if call.price.flagship_cost_usd is not None:
            headers["x-tollgate-flagship-cost-usd"] = f"{call.price.flagship_cost_usd:.8f}"
    return headers


async def complete(pool: UpstreamPool, billing: Billing, call: Call, deadline_s: float) -> Response:
    """A non-streamed call: one JSON answer, priced and labelled in headers."""
    answer, attempt = await fetch_whole(pool, billing, call, call.body, deadline_s)
    return await respond_whole(call, answer, attempt)


async def respond_whole(call: Call, answer: dict, attempt: Attempt) -> Response:
    if call.check_answer is not None:  # output moderation: may redact, or raise (the call is billed)
        answer = await call.check_answer(answer)
    if call.strip_logprobs:
        for choice in answer.get("choices") or ():
            choice.pop("logprobs", None)
    if call.on_answer is not None:
        call.on_answer(answer)
    return Response(orjson.dumps(answer), media_type="application/json", headers=_answer_headers(call, attempt))


async def fetch_whole(pool: UpstreamPool, billing: Billing, call: Call, body: dict, deadline_s: float) -> tuple[dict, Attempt]:
    """Send ``body`` on the call's route and read the whole answer; the call is priced from it."""
    try:
        async with asyncio.timeout(deadline_s):
            upstream_started = time.perf_counter()
            attempt = await pool.send(call.route, call.endpoint, body, call.request_id)
            try:
                raw = await attempt.response.read()
            finally:
                attempt.response.release()
            call.upstream_seconds = time.perf_counter() - upstream_started
    except TimeoutError:
        raise APIError(504, f"no answer within {deadline_s:g}s", code="upstream_timeout") from None
    except aiohttp.ClientError as err:
        raise APIError(502, f"upstream failed mid-answer ({type(err).__name__})", code="upstream_unavailable") from None
    metrics.UPSTREAM_TTFB_SECONDS.labels(attempt.target.backend.name).observe(call.upstream_seconds)
    call.served_by(attempt)
    if attempt.response.status != 200:
        raise upstream_rejection(attempt, raw)
    try:
        answer = orjson.loads(raw)
    except orjson.JSONDecodeError:
        answer = None
    if not isinstance(answer, dict):
        raise APIError(502, "upstream answered with invalid JSON", code="upstream_invalid_response")
    answer["model"] = call.route.model
    if not answer.get("usage"):  # some engines omit it; the gateway still has to bill the call
        answer["usage"] = tokens.estimated_usage(call.body, _answer_tokens(answer))
    call.usage = answer["usage"]
    call.answered = True
    settle(pool, billing, call, attempt)
    return answer, attempt


def _answer_tokens(answer: dict) -> int:
    texts = []
    for choice in answer.get("choices") or []:
        message = choice.get("message") or {}
        texts.append(choice.get("text") or tokens.content_text(message.get("content")))
    return sum(tokens.count(text) for text in texts)


def upstream_rejection(attempt: Attempt, raw: bytes) -> APIError:
    """An upstream 4xx as an OpenAI error; the gateway's own credentials never leak to the client."""
    status = attempt.response.status
    backend = attempt.target.backend
    if status in (401, 403):
        return APIError(502, f"backend {backend.name} rejected the gateway's credentials", code="upstream_auth_failed")
    message, code, param = f"backend {backend.name} answered HTTP {status}", "upstream_rejected", None
    try:
        detail = orjson.loads(raw).get("error")
        if isinstance(detail, dict):
            message = str(detail.get("message") or message)[:1000]
            code = str(detail.get("code") or code)
            param = detail.get("param") if isinstance(detail.get("param"), str) else None
        elif isinstance(detail, str):
            message = detail[:1000]
    except (orjson.JSONDecodeError, AttributeError):
        pass
    if backend.config.api_key:
        message = message.replace(backend.config.api_key, "***")
    return APIError(status if 400 <= status < 500 else 502, message, code=code, param=param)


async def _prime(response: aiohttp.ClientResponse) -> tuple[sse.Event, AsyncIterator[sse.Event]]:
    """Read the first event of an upstream stream (inside the retryable attempt)."""
    events = sse.iter_events(sse.iter_lines(response.content.iter_any()))
    try:
        first = await anext(events)
    except StopAsyncIteration:
        raise aiohttp.ClientPayloadError("stream ended before its first event") from None
    return first, events


async def stream(pool: UpstreamPool, billing: Billing, call: Call, include_usage: bool, deadline_s: float) -> Response:
    """A streamed call: retries happen before the first event; after that, errors end the stream cleanly."""
    attempt = await open_stream(pool, call, call.body, deadline_s)
    return relay_response(pool, billing, call, attempt, include_usage, deadline_s)


async def open_stream(pool: UpstreamPool, call: Call, body: dict, deadline_s: float) -> Attempt:
    """Send a streamed request (asking for usage) and read its first event, retrying before that."""
    body = {**body, "stream_options": {**(body.get("stream_options") or {}), "include_usage": True}}
    upstream_started = time.perf_counter()
    try:
        async with asyncio.timeout(deadline_s):
            attempt = await pool.send(call.route, call.endpoint, body, call.request_id, primer=_prime)
    except TimeoutError:
        raise APIError(504, f"no answer within {deadline_s:g}s", code="upstream_timeout") from None
    call.served_by(attempt)
    if attempt.response.status != 200:
        try:
            raw = await attempt.response.read()
        except aiohttp.ClientError:
            raw = b""
        finally:
            attempt.response.release()
        raise upstream_rejection(attempt, raw)
    call.upstream_seconds = time.perf_counter() - upstream_started
    metrics.UPSTREAM_TTFB_SECONDS.labels(attempt.target.backend.name).observe(call.upstream_seconds)
    return attempt


def relay_response(pool: UpstreamPool, billing: Billing, call: Call, attempt: Attempt, include_usage: bool,
                   deadline_s: float) -> Response:
    """The client's stream, relayed from an opened (primed) upstream attempt."""
    headers = _answer_headers(call, attempt)  # the cost is not known until the stream ends
    deadline = call.started + deadline_s
    response = _RelayResponse(
        _relay(attempt, pool, billing, call, include_usage, deadline),
        media_type="text/event-stream",
        headers={**headers, "cache-control": "no-cache"},
    )
    response.on_unstarted = lambda: _end_stream(attempt, pool, billing, call, "client_disconnected", 0)
    return response


class _RelayResponse(StreamingResponse):
    """A relayed stream that is billed and recorded even if the client left before its first byte
    (the relay's own ``finally`` never runs for a generator that was never started)."""

    on_unstarted: Callable[[], None] | None = None

    async def __call__(self, scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        started = False

        async def watch_start(message):  # type: ignore[no-untyped-def]
            nonlocal started
            if message["type"] == "http.response.body":
                started = True
            await send(message)

        try:
            await super().__call__(scope, receive, watch_start)
        finally:
            if not started and self.on_unstarted is not None:
                self.on_unstarted()


async def _relay(attempt: Attempt, pool: UpstreamPool, billing: Billing, call: Call, include_usage: bool,
                 deadline: float) -> AsyncIterator[bytes]:
    first, events = attempt.primed
    call.answered, outcome, deltas = True, "client_disconnected", 0
    try:
        async for event in _chain(first, events):
            if event.data == sse.DONE:
                outcome = None
                if call.stream_filter is not None and (rest := call.stream_filter.flush()):
                    yield _text_chunk(call, rest)  # text still held back when no finish chunk came
                if call.usage is None:  # the engine ignored include_usage: estimate it
                    call.usage = tokens.estimated_usage(call.body, deltas)
                    if include_usage:
                        yield _usage_chunk(call)
                yield sse.DONE_EVENT
                break
            out, carried_token = _rewrite_chunk(event.data, call, include_usage)
            if carried_token and call.ttft_s is None:
                call.ttft_s = time.perf_counter() - call.started
            deltas += carried_token
            if out is not None:
                yield out
            if call.stream_filter is not None and call.stream_filter.blocked:
                outcome = "content_filter"  # end cleanly, as OpenAI does: a content_filter finish
                yield _filtered_chunk(call)
                yield sse.DONE_EVENT
                break
            if time.perf_counter() > deadline:
                outcome = "upstream_timeout"
                yield _error_event("request exceeded the gateway's time limit", outcome)
                break
        else:
            outcome = "upstream_disconnected"
            yield _error_event("upstream stream ended before it was complete", outcome)
    except (aiohttp.ClientError, asyncio.TimeoutError) as err:
        outcome = "upstream_disconnected"
        yield _error_event(f"upstream stream failed ({type(err).__name__})", outcome)
    finally:
        _end_stream(attempt, pool, billing, call, outcome, deltas)


def _end_stream(attempt: Attempt, pool: UpstreamPool, billing: Billing, call: Call, outcome: str | None,
                deltas: int) -> None:
    """Close the upstream (cancelling it if the client left), bill what was generated, record the call."""
    if call.ended:
        return
    call.ended = True
    attempt.response.close()
    if call.usage is None:  # cut short: bill the prompt and what was generated
        call.usage = tokens.estimated_usage(call.body, deltas)
    call.error_code = outcome
    settle(pool, billing, call, attempt)
    if outcome is not None and outcome != "client_disconnected":
        metrics.UPSTREAM_ERRORS.labels(attempt.target.backend.name).inc()
    if call.ttft_s is not None:
        metrics.TTFT_SECONDS.labels(call.route.model if call.route else "").observe(call.ttft_s)
    if outcome is None and call.assembler is not None and call.on_answer is not None:
        answer = call.assembler.answer(call.usage)
        if answer is not None:
            call.on_answer(answer)
    if call.finish is not None:
        call.finish()


def _usage_chunk(call: Call) -> bytes:
    chat = call.endpoint == "/chat/completions"
    chunk = {"id": f"{'chatcmpl' if chat else 'cmpl'}-{call.request_id}",
             "object": "chat.completion.chunk" if chat else "text_completion",
             "model": call.route.model, "choices": [], "usage": call.usage}
    return sse.encode(orjson.dumps(chunk))


async def _chain(first: sse.Event, rest: AsyncIterator[sse.Event]) -> AsyncIterator[sse.Event]:
    yield first
    async for event in rest:
        yield event


def _filtered_chunk(call: Call) -> bytes:
    return _text_chunk(call, "", "content_filter")


def _text_chunk(call: Call, text: str, finish_reason: str | None = None) -> bytes:
    chat = call.endpoint == "/chat/completions"
    choice = {"index": 0, "finish_reason": finish_reason, **({"delta": {"content": text}} if chat else {"text": text})}
    chunk = {"id": f"{'chatcmpl' if chat else 'cmpl'}-{call.request_id}",
             "object": "chat.completion.chunk" if chat else "text_completion", "model": call.route.model,
             "choices": [choice]}
    return sse.encode(orjson.dumps(chunk))


def _rewrite_chunk(data: bytes, call: Call, include_usage: bool) -> tuple[bytes | None, bool]:
    """The chunk for the client (None to drop it), and whether it carried a generated token."""
    try:
        chunk = orjson.loads(data)
    except orjson.JSONDecodeError:
        return sse.encode(data), False
    if not isinstance(chunk, dict) or "error" in chunk:
        return sse.encode(data), False
    chunk["model"] = call.route.model
    carried = _has_token(chunk)
    if call.stream_filter is not None:
        if moderate_chunk(chunk, call.stream_filter):
            return None, carried
        if carried and not _has_token(chunk) and not _has_finish(chunk):
            return None, carried  # its text is held back in the moderation window for now
    if call.assembler is not None:
        call.assembler.add(chunk)
    if call.strip_logprobs:
        for choice in chunk.get("choices") or ():
            choice.pop("logprobs", None)
    usage = chunk.get("usage")
    if usage:
        call.usage = usage
    if not include_usage:
        if usage and not chunk.get("choices"):
            return None, False
        chunk.pop("usage", None)
    return sse.encode(orjson.dumps(chunk)), carried


def _has_finish(chunk: dict) -> bool:
    return any(choice.get("finish_reason") for choice in chunk.get("choices") or ())


def _has_token(chunk: dict) -> bool:
    """Engines stream one token per chunk; a chunk with generated text or tool arguments has one."""
    for choice in chunk.get("choices") or ():
        delta = choice.get("delta") or {}
        if choice.get("text") or delta.get("content") or delta.get("tool_calls") or delta.get("reasoning_content"):
            return True
    return False


def _error_event(message: str, code: str) -> bytes:
    return sse.encode(orjson.dumps({"error": {"message": message, "type": "upstream_error", "param": None, "code": code}}))
