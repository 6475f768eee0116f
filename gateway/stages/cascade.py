"""The cascade: ask the cheap model first, and the flagship only when the cheap answer looks unsure.

The cheap call is made with logprobs on (the pipeline removes them again unless the client asked
for them). Its confidence (``router.confidence``) below the escalation threshold, or a failed cheap
call, sends the request on to the flagship, whose answer is returned. Both calls are billed.

Streams hold back the cheap model's first ``holdback_tokens`` tokens to decide. If they look sure,
the held-back events are pushed back and the stream is relayed as usual; if not, the cheap stream
is closed (and billed for what it generated) and the flagship's stream is opened instead. Either
way the client sees one well-formed SSE stream: nothing is sent before the decision. This module
only uses the forwarder; it knows nothing of prices, ledgers or HTTP.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import orjson

from router.confidence import Confidence, assess
from wire import sse, tokens
from wire.texts import choice_logprobs, choice_text, has_tool_calls

from ..upstream.forwarder import Additions, Forwarder, Reply, Served, UpstreamError, UpstreamStream
from ..upstream.pool import Replica, Route
from ..upstream.transport import TransportError
from .router import Escalation


@dataclass(frozen=True, slots=True)
class CascadeResult:
    escalated: bool
    confidence: float | None  # None: not a cascade
    prior: Served | None  # the cheap call, when it was escalated past (it is billed too)
    strip_logprobs: bool  # logprobs were asked for by the gateway, not the client


NOT_CASCADED = CascadeResult(False, None, None, False)


def with_logprobs(body: dict[str, Any], endpoint: str) -> tuple[dict[str, Any], bool]:
    """The body asking for token logprobs, and whether the gateway added them."""
    if body.get("logprobs"):
        return body, False
    return {**body, "logprobs": True if endpoint == "/chat/completions" else 1}, True


def whole_confidence(answer: dict[str, Any]) -> Confidence:
    choice = (answer.get("choices") or [{}])[0]
    return assess(choice_text(choice), choice_logprobs(choice), choice.get("finish_reason"), has_tool_calls(choice))


def _remaining(deadline: float) -> float:
    return max(deadline - time.perf_counter(), 0.001)


async def whole(forwarder: Forwarder, cheap: Route, escalation: Escalation, endpoint: str, body: dict[str, Any],
                request_id: str, prefer: Replica | None, deadline: float, additions: Additions) -> tuple[Reply, CascadeResult]:
    asked, strip = with_logprobs(body, endpoint)
    prior: Served | None = None
    try:
        reply = await forwarder.whole(cheap, endpoint, asked, request_id, prefer, _remaining(deadline), additions)
    except UpstreamError as err:
        if err.status < 500:
            raise
        confidence = 0.0  # the cheap model failed: the flagship answers
    else:
        confidence = whole_confidence(reply.answer).score
        if confidence >= escalation.threshold:
            return reply, CascadeResult(False, confidence, None, strip)
        prior = reply.served
    try:
        reply = await forwarder.whole(escalation.route, endpoint, body, request_id, None, _remaining(deadline), additions)
    except UpstreamError as err:
        if prior is None:
            raise
        raise err.after(prior) from err
    return reply, CascadeResult(True, confidence, prior, False)


async def open_stream(forwarder: Forwarder, cheap: Route, escalation: Escalation, endpoint: str,
                      body: dict[str, Any], request_id: str, prefer: Replica | None,
                      deadline: float, additions: Additions) -> tuple[UpstreamStream, CascadeResult]:
    asked, strip = with_logprobs(body, endpoint)
    prior: Served | None = None
    try:
        stream = await forwarder.open_stream(cheap, endpoint, asked, request_id, prefer, _remaining(deadline), additions)
    except UpstreamError as err:
        if err.status < 500:
            raise
        confidence = 0.0
    else:
        try:
            held, judged = await _hold_back(stream, escalation.holdback_tokens)
        except TransportError:
            held, judged = [], Confidence(0.0, "failed")
        if judged.score >= escalation.threshold:
            stream.unread(held)
            return stream, CascadeResult(False, judged.score, None, strip)
        confidence = judged.score
        stream.close()  # the engine stops generating; what it made is billed
        prior = stream.served(_abandoned_usage(held, body))
    try:
        flagship = await forwarder.open_stream(escalation.route, endpoint, body, request_id, None, _remaining(deadline),
                                               additions)
    except UpstreamError as err:
        if prior is None:
            raise
        raise err.after(prior) from err
    return flagship, CascadeResult(True, confidence, prior, False)


async def _hold_back(stream: UpstreamStream, holdback: int) -> tuple[list[sse.Event], Confidence]:
    """Read events until ``holdback`` tokens arrived or the stream ended; judge what was read."""
    held: list[sse.Event] = []
    text: list[str] = []
    logprobs: list[float] = []
    finish, tool_calls, generated, ended = None, False, 0, False
    while generated < holdback:
        event = await stream.next_event()
        if event is None:
            ended = True
            break
        held.append(event)
        if event.data == sse.DONE:
            ended = True
            break
        for choice in (_json(event.data).get("choices") or ())[:1]:
            piece = choice_text(choice)
            generated += bool(piece) or has_tool_calls(choice)
            text.append(piece)
            logprobs += choice_logprobs(choice)
            finish = choice.get("finish_reason") or finish
            tool_calls = tool_calls or has_tool_calls(choice)
    ended = ended or finish is not None
    # A stream that ended inside the hold-back has its finish reason; otherwise judge the prefix.
    return held, assess("".join(text), logprobs, finish if ended else None, tool_calls)


def _abandoned_usage(held: list[sse.Event], body: dict[str, Any]) -> dict[str, Any]:
    chunks = [_json(event.data) for event in held]
    usage = next((chunk["usage"] for chunk in chunks if chunk.get("usage")), None)
    generated = sum(1 for chunk in chunks if any(choice_text(c) for c in (chunk.get("choices") or ())[:1]))
    return usage or tokens.estimated_usage(body, generated)


def _json(data: bytes) -> dict[str, Any]:
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}
