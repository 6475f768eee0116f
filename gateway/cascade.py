"""The cascade: ask the cheap model first, and the flagship only when the cheap answer looks unsure.

The cheap call is made with logprobs on (removed again from the answer unless the client asked for
them). Its confidence (``router.confidence``) below the escalation threshold, or a failed cheap
call, sends the request on to the flagship, whose answer is returned. Both calls are priced and
recorded as one ledger record (``route: cascade``, ``escalated``, both models).

Streams hold back the cheap model's first ``holdback_tokens`` tokens to decide. If they look
sure, the held-back events are released and the stream continues; if not, the cheap stream is
closed (and billed for what it generated) and the flagship's stream is relayed instead. Either
way the client sees one well-formed SSE stream: nothing is sent before the decision.
"""

from __future__ import annotations

import time
from typing import AsyncIterator

import aiohttp
import orjson
from starlette.responses import Response

from router.confidence import Confidence, assess, choice_logprobs, choice_text, has_tool_calls

from . import metrics, proxy, sse, streaming, tokens
from .billing import Billing
from .errors import APIError
from .upstream import Attempt, Route, UpstreamPool


def with_logprobs(body: dict, endpoint: str) -> tuple[dict, bool]:
    """The body asking for token logprobs, and whether the gateway added them."""
    if body.get("logprobs"):
        return body, False
    return {**body, "logprobs": True if endpoint == "/chat/completions" else 1}, True


def whole_confidence(answer: dict) -> Confidence:
    choices = answer.get("choices") or [{}]
    choice = choices[0]
    return assess(choice_text(choice), choice_logprobs(choice), choice.get("finish_reason"), has_tool_calls(choice))


def _escalate(call: proxy.Call, flagship: Route) -> None:
    """From here on the call is the flagship's; what the cheap call cost is carried along."""
    call.escalated = True
    call.prior_price, call.prior_usage = call.price, call.usage
    call.price, call.usage, call.route, call.strip_logprobs = None, None, flagship, False
    metrics.ESCALATIONS.labels(call.tenant).inc()


def _headers(response: Response, call: proxy.Call) -> Response:
    response.headers["x-tollgate-escalated"] = "true" if call.escalated else "false"
    if call.confidence is not None:
        response.headers["x-tollgate-cascade-confidence"] = f"{call.confidence:.4f}"
    return response


def _remaining(call: proxy.Call, deadline_s: float) -> float:
    return max(call.started + deadline_s - time.perf_counter(), 0.001)


async def complete(pool: UpstreamPool, billing: Billing, call: proxy.Call, flagship: Route, threshold: float,
                   deadline_s: float) -> Response:
    body, call.strip_logprobs = with_logprobs(call.body, call.endpoint)
    try:
        answer, attempt = await proxy.fetch_whole(pool, billing, call, body, _remaining(call, deadline_s))
    except APIError as err:
        if err.status < 500:
            raise
        call.confidence = 0.0  # the cheap model failed: the flagship answers
    else:
        call.confidence = whole_confidence(answer).score
        if call.confidence >= threshold:
            return _headers(await proxy.respond_whole(call, answer, attempt), call)
    _escalate(call, flagship)
    answer, attempt = await proxy.fetch_whole(pool, billing, call, call.body, _remaining(call, deadline_s))
    return _headers(await proxy.respond_whole(call, answer, attempt), call)


async def stream(pool: UpstreamPool, billing: Billing, call: proxy.Call, flagship: Route, threshold: float,
                 holdback: int, include_usage: bool, deadline_s: float) -> Response:
    body, call.strip_logprobs = with_logprobs(call.body, call.endpoint)
    attempt: Attempt | None = None
    try:
        attempt = await streaming.open_stream(pool, call, body, _remaining(call, deadline_s))
        held, complete_, confidence = await _hold_back(attempt, holdback)
    except APIError as err:
        if err.status < 500:
            raise
        held, complete_, confidence = [], False, Confidence(0.0, "failed")
    except (aiohttp.ClientError, TimeoutError):
        held, complete_, confidence = [], False, Confidence(0.0, "failed")
    call.confidence = confidence.score
    if attempt is not None and confidence.score >= threshold:
        first, rest = attempt.primed  # type: ignore[misc]
        attempt.primed = (held[0], _replay(held[1:], rest if not complete_ else None))
        return _headers(streaming.relay_response(pool, billing, call, attempt, include_usage, deadline_s), call)
    if attempt is not None:
        _bill_abandoned(pool, billing, call, attempt, held)
    _escalate(call, flagship)
    flagship_attempt = await streaming.open_stream(pool, call, call.body, _remaining(call, deadline_s))
    return _headers(streaming.relay_response(pool, billing, call, flagship_attempt, include_usage, deadline_s), call)


async def _hold_back(attempt: Attempt, holdback: int) -> tuple[list[sse.Event], bool, Confidence]:
    """Read events until ``holdback`` tokens arrived or the stream ended; judge what was read."""
    first, rest = attempt.primed  # type: ignore[misc]
    held, text, logprobs, finish, tool_calls, generated = [first], [], [], None, False, 0
    event: sse.Event | None = first
    while event is not None:
        if event.data == sse.DONE:
            break
        chunk = _json(event.data)
        for choice in (chunk.get("choices") or ())[:1]:
            piece = choice_text(choice)
            generated += bool(piece) or has_tool_calls(choice)
            text.append(piece)
            logprobs += choice_logprobs(choice)
            finish = choice.get("finish_reason") or finish
            tool_calls = tool_calls or has_tool_calls(choice)
        if generated >= holdback:
            break
        event = await anext(rest, None)
        if event is not None:
            held.append(event)
    complete_ = bool(held) and held[-1].data == sse.DONE or event is None
    # A stream that ended inside the hold-back has its finish reason; otherwise judge the prefix.
    return held, complete_, assess("".join(text), logprobs, finish if complete_ else None, tool_calls)


def _json(data: bytes) -> dict:
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


async def _replay(held: list[sse.Event], rest: AsyncIterator[sse.Event] | None) -> AsyncIterator[sse.Event]:
    for event in held:
        yield event
    if rest is not None:
        async for event in rest:
            yield event


def _bill_abandoned(pool: UpstreamPool, billing: Billing, call: proxy.Call, attempt: Attempt,
                    held: list[sse.Event]) -> None:
    """Close the cheap stream (the engine stops generating) and bill what it had generated."""
    attempt.response.close()
    attempt.done()
    chunks = [_json(event.data) for event in held]
    usage = next((chunk["usage"] for chunk in chunks if chunk.get("usage")), None)
    generated = sum(1 for chunk in chunks if any(choice_text(c) for c in (chunk.get("choices") or ())[:1]))
    call.usage = usage or tokens.estimated_usage(call.body, generated)
    proxy.settle(pool, billing, call, attempt)
