"""The cascade: ask the cheap model first, and the flagship only when the cheap answer looks unsure.

The cheap call asks for token logprobs (in the way its engine kind wants them; the pipeline removes
them again unless the client asked for them) and is always streamed from the engine, even when the
client wants a whole answer: its first byte then comes with its first token, so a hung or
overloaded cheap engine costs at most ``first_byte_timeout_s`` before the flagship is asked. The
cheap answer's confidence (``router.confidence``) below the escalation threshold, or a failed,
hung or down cheap engine, sends the request on to the flagship. Both calls are billed, and the
result says why it escalated.

Streams hold back the cheap model's first ``holdback_tokens`` tokens to decide. If they look sure,
the held-back events are pushed back and the stream is relayed as usual; if not, the cheap stream
is closed (and billed for what it generated) and the flagship's stream is opened instead. Either
way the client sees one well-formed SSE stream: nothing is sent before the decision. This module
only uses the forwarder; it knows nothing of prices, ledgers or HTTP.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, replace
from typing import Any

import orjson

from router.confidence import Confidence, assess
from wire import sse, tokens
from wire.chunks import CHAT, assemble
from wire.texts import choice_logprobs, choice_text, has_tool_calls

from ..upstream.forwarder import Additions, Forwarder, Reply, Served, UpstreamError, UpstreamStream
from ..upstream.pool import Replica, Route
from ..upstream.transport import TransportError
from .router import Escalation

# Why a cascade escalated. The last three are the infrastructure's failures, not the cheap model's:
# they never become router training labels.
INFRASTRUCTURE = ("cheap_failed", "cheap_timeout", "cheap_down")
_REASONS = {"truncated": "truncated", "empty": "empty", "refusal": "refusal"}


@dataclass(frozen=True, slots=True)
class CascadeResult:
    escalated: bool
    confidence: float | None  # None: not a cascade
    prior: Served | None  # the cheap call, when it was escalated past (it is billed too)
    strip_logprobs: bool  # logprobs were asked for by the gateway, not the client
    reason: str | None = None  # why it escalated: low_confidence, truncated, empty, refusal, or INFRASTRUCTURE


NOT_CASCADED = CascadeResult(False, None, None, False)


def client_wants_logprobs(body: dict[str, Any], endpoint: str) -> bool:
    value = body.get("logprobs")
    return value is True if endpoint == CHAT else isinstance(value, int) and not isinstance(value, bool) and value > 0


def output_limit(body: dict[str, Any]) -> int | None:
    """The most tokens the client lets one answer have, when it says."""
    for name in ("max_completion_tokens", "max_tokens"):
        value = body.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def judge(answer: dict[str, Any], capped_by_client: bool, scorer: str) -> Confidence:
    choice = (answer.get("choices") or [{}])[0]
    return assess(choice_text(choice), choice_logprobs(choice), choice.get("finish_reason"), has_tool_calls(choice),
                  capped_by_client, scorer)


def reason_of(confidence: Confidence) -> str:
    return _REASONS.get(confidence.reason, "low_confidence")


def _remaining(deadline: float) -> float:
    return max(deadline - time.perf_counter(), 0.001)


def _first_byte(deadline: float, escalation: Escalation) -> float:
    return min(_remaining(deadline), escalation.first_byte_timeout_s)


async def _open_cheap(forwarder: Forwarder, cheap: Route, escalation: Escalation, endpoint: str, body: dict[str, Any],
                      request_id: str, prefer: Replica | None, deadline: float, additions: Additions) -> UpstreamStream | str:
    """The cheap model's stream (with logprobs, its first event within the first-byte deadline), or
    why there is none: ``cheap_down`` (known down: not waited on), ``cheap_timeout`` or ``cheap_failed``.
    A 4xx (the request itself is wrong) is raised: the flagship would refuse it too."""
    if not forwarder.pool.has_up_replica(cheap):
        return "cheap_down"
    try:
        return await forwarder.open_stream(cheap, endpoint, body, request_id, prefer, _first_byte(deadline, escalation),
                                           replace(additions, logprobs=True))
    except UpstreamError as err:
        if err.status < 500:
            raise
        return "cheap_timeout" if err.code == "upstream_timeout" else "cheap_failed"


async def whole(forwarder: Forwarder, cheap: Route, escalation: Escalation, endpoint: str, body: dict[str, Any],
                request_id: str, prefer: Replica | None, deadline: float, additions: Additions) -> tuple[Reply, CascadeResult]:
    strip = not client_wants_logprobs(body, endpoint)
    started = time.perf_counter()
    opened = await _open_cheap(forwarder, cheap, escalation, endpoint, {**body, "stream": True}, request_id, prefer,
                               deadline, additions)
    confidence, prior = 0.0, None
    if isinstance(opened, str):
        reason = opened
    else:
        answer, failure = await _read_answer(forwarder, opened, body, endpoint, deadline, escalation.first_byte_timeout_s)
        prior = opened.served(answer["usage"])
        if failure is not None:
            reason = failure
        else:
            judged = judge(answer, output_limit(body) is not None, escalation.scorer)
            confidence = judged.score
            if confidence >= escalation.threshold:
                answer["model"] = cheap.model
                return Reply(answer, prior, time.perf_counter() - started), CascadeResult(False, confidence, None, strip)
            reason = reason_of(judged)
    try:
        reply = await forwarder.whole(escalation.route, endpoint, body, request_id, None, _remaining(deadline), additions)
    except UpstreamError as err:
        if prior is None:
            raise
        raise err.after(prior) from err
    return reply, CascadeResult(True, confidence, prior, False, reason)


async def _read_answer(forwarder: Forwarder, stream: UpstreamStream, body: dict[str, Any], endpoint: str,
                       deadline: float, gap_s: float) -> tuple[dict[str, Any], str | None]:
    """The whole answer the cheap stream makes (usage estimated for engines that ignore
    ``include_usage``), and what went wrong if it broke or stalled (a stalled replica is marked down)."""
    chunks, failure = await _read_all(stream, deadline, gap_s)
    stream.close()
    if failure == "cheap_timeout":
        forwarder.stalled(stream)
    answer = assemble(chunks, endpoint)
    if not isinstance(answer.get("usage"), dict):
        generated = sum(1 for chunk in chunks if any(choice_text(c) for c in chunk.get("choices") or ()))
        answer["usage"] = tokens.estimated_usage(body, generated)
    return answer, failure


async def _next_event(stream: UpstreamStream, gap_s: float) -> sse.Event | None:
    """The next event, within ``gap_s``: a cheap engine that stalls mid-answer is as good as hung."""
    async with asyncio.timeout(gap_s):
        return await stream.next_event()


async def _read_all(stream: UpstreamStream, deadline: float, gap_s: float) -> tuple[list[dict[str, Any]], str | None]:
    """Every chunk of a stream until ``[DONE]``; and what went wrong, if the stream broke or ran out of time."""
    chunks: list[dict[str, Any]] = []
    try:
        async with asyncio.timeout(_remaining(deadline)):
            while (event := await _next_event(stream, gap_s)) is not None:
                if event.data == sse.DONE:
                    return chunks, None
                chunk = _json(event.data)
                if "error" in chunk:
                    return chunks, "cheap_failed"
                chunks.append(chunk)
    except TimeoutError:
        return chunks, "cheap_timeout"
    except TransportError:
        return chunks, "cheap_failed"
    return chunks, "cheap_failed"  # ended without [DONE]


async def open_stream(forwarder: Forwarder, cheap: Route, escalation: Escalation, endpoint: str,
                      body: dict[str, Any], request_id: str, prefer: Replica | None,
                      deadline: float, additions: Additions) -> tuple[UpstreamStream, CascadeResult]:
    strip = not client_wants_logprobs(body, endpoint)
    opened = await _open_cheap(forwarder, cheap, escalation, endpoint, body, request_id, prefer, deadline, additions)
    confidence, prior = 0.0, None
    if isinstance(opened, str):
        reason = opened
    else:
        held, judged = await _judge_prefix(forwarder, opened, escalation, output_limit(body))
        confidence = judged.score
        if confidence >= escalation.threshold:
            opened.unread(held)
            return opened, CascadeResult(False, confidence, None, strip)
        reason = _STREAM_FAILURES.get(judged.reason) or reason_of(judged)
        opened.close()  # the engine stops generating; what it made is billed
        prior = opened.served(_abandoned_usage(held, body))
    try:
        flagship = await forwarder.open_stream(escalation.route, endpoint, body, request_id, None, _remaining(deadline),
                                               additions)
    except UpstreamError as err:
        if prior is None:
            raise
        raise err.after(prior) from err
    return flagship, CascadeResult(True, confidence, prior, False, reason)


_STREAM_FAILURES = {"failed": "cheap_failed", "timeout": "cheap_timeout"}


async def _judge_prefix(forwarder: Forwarder, stream: UpstreamStream, escalation: Escalation,
                        limit: int | None) -> tuple[list[sse.Event], Confidence]:
    """The held-back events and their confidence; a stream that broke or stalled scores 0 (a stalled
    replica is marked down)."""
    try:
        return await _hold_back(stream, escalation, limit)
    except TransportError:
        return [], Confidence(0.0, "failed")
    except TimeoutError:
        forwarder.stalled(stream)
        return [], Confidence(0.0, "timeout")


async def _hold_back(stream: UpstreamStream, escalation: Escalation,
                     limit: int | None) -> tuple[list[sse.Event], Confidence]:
    """Read events until ``holdback_tokens`` tokens arrived or the stream ended; judge what was read.
    An answer the client capped within the hold-back is read to its end, so that it is judged whole
    (as a whole answer would be), finish reason included. Raises TimeoutError if the engine stalls
    for ``first_byte_timeout_s`` between two events."""
    holdback = escalation.holdback_tokens
    held: list[sse.Event] = []
    text: list[str] = []
    logprobs: list[float] = []
    finish, tool_calls, generated, ended = None, False, 0, False
    read_to_end = limit is not None and limit <= holdback
    while read_to_end or generated < holdback:
        event = await _next_event(stream, escalation.first_byte_timeout_s)
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
    return held, assess("".join(text), logprobs, finish if ended else None, tool_calls, limit is not None,
                        escalation.scorer)


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
