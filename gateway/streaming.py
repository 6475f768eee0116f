"""Streamed answers: opening the upstream stream, relaying it event by event, ending it cleanly.

Retries happen before the first event (the primer reads it inside the attempt); after that a
failure ends the stream with an OpenAI error event, never a hang. The client's stream always
asks the upstream for usage (to bill it) and drops that chunk again unless the client asked for
it. When the stream ends (finished, cut, or the client gone), the call is billed and recorded.
"""

from __future__ import annotations

import asyncio
import time
from typing import AsyncIterator, Callable

import aiohttp
import orjson
from starlette.responses import Response, StreamingResponse

from . import metrics, sse, tokens
from .billing import Billing
from .errors import APIError
from .moderation import moderate_chunk
from .proxy import Call, answer_headers, settle, upstream_rejection
from .upstream import Attempt, UpstreamPool


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
            attempt = await pool.send(call.route, call.endpoint, body, call.request_id, primer=_prime, prefer=call.prefer)
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
            attempt.done()
        raise upstream_rejection(attempt, raw)
    call.upstream_seconds = time.perf_counter() - upstream_started
    metrics.UPSTREAM_TTFB_SECONDS.labels(attempt.target.backend.name).observe(call.upstream_seconds)
    return attempt


def relay_response(pool: UpstreamPool, billing: Billing, call: Call, attempt: Attempt, include_usage: bool,
                   deadline_s: float) -> Response:
    """The client's stream, relayed from an opened (primed) upstream attempt."""
    headers = answer_headers(call, attempt)  # the cost is not known until the stream ends
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
    attempt.done()
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
