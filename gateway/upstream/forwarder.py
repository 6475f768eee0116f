"""Forwarding one request upstream: retries over replicas and fallbacks, until an answer is in hand.

``Forwarder.whole`` reads the whole answer inside the attempt, so an upstream that sends its headers
and then drops the connection is retried on the next replica like any other failure.
``Forwarder.open_stream`` reads a stream's first event inside the attempt for the same reason; after
that, the stream is the caller's (``relay.py``). Connection errors, timeouts, 408/409/429 and 5xx
move on to the next attempt; other 4xx answers are the client's and go back to it as they came
(without the gateway's credentials). The client's JSON is forwarded as it came, with ``model`` set to
the name the backend knows; answers carry the public model name back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson

from wire import sse, tokens
from wire.texts import answer_text

from .. import metrics
from ..errors import APIError
from ..logs import Warnings
from .load import Stint
from .pool import Replica, Route, Target, UpstreamPool
from .transport import ConnectFailed, ReadTimedOut, StreamBroken, TransportError, UpstreamResponse

log = logging.getLogger("tollgate.upstream")
RETRYABLE_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})
_T = TypeVar("_T")


SALTED_KINDS = ("vllm", "sglang")  # engines that isolate their prefix cache by a per-request ``cache_salt``


@dataclass(frozen=True, slots=True)
class Additions:
    """What the gateway adds to the client's body for each backend it goes to."""

    output_cap: int | None = None  # max tokens per completion, for a body that set none
    cache_salt: str | None = None  # the caller's prefix-cache namespace, for engines that take one
    logprobs: bool = False  # token logprobs of the answer (the cascade judges the cheap answer by them)


NOTHING_ADDED = Additions()


def logprob_fields(kind: str, chat: bool, body: dict[str, Any]) -> dict[str, Any]:
    """What one engine kind needs to return token logprobs, beyond what the body already asks.

    OpenAI's API, vLLM, SGLang and TGI return chat logprobs for ``logprobs: true`` and legacy
    completion logprobs for ``logprobs: <n>``; llama-cpp-python's server returns none for chat unless
    ``top_logprobs`` is set too (0 is enough). TGI's legacy completions return none at all."""
    if chat:
        fields: dict[str, Any] = {} if body.get("logprobs") is True else {"logprobs": True}
        if kind == "llamacpp" and body.get("top_logprobs") is None:
            fields["top_logprobs"] = 0
        return fields
    if kind == "tgi" or (isinstance(body.get("logprobs"), int) and body["logprobs"] > 0):
        return {}
    return {"logprobs": 1}


def upstream_body(body: dict[str, Any], target: Target, endpoint: str, additions: Additions) -> bytes:
    """The body as one target receives it: its own model name, the gateway's additions, and never a
    ``cache_salt`` the client chose (with it, a tenant could name another's cache namespace)."""
    payload = {**body, "model": target.upstream_model}
    kind = target.backend.config.kind
    chat = endpoint.endswith("chat/completions")
    payload.pop("cache_salt", None)
    if additions.cache_salt is not None and kind in SALTED_KINDS:
        payload["cache_salt"] = additions.cache_salt
    if additions.output_cap is not None:
        # OpenAI's own API takes only max_completion_tokens for some chat models; engines take max_tokens.
        payload["max_completion_tokens" if kind == "openai" and chat else "max_tokens"] = additions.output_cap
    if additions.logprobs or (chat and body.get("logprobs") is True):
        payload.update(logprob_fields(kind, chat, body))
    return orjson.dumps(payload)


@dataclass(frozen=True, slots=True)
class Served:
    """One upstream call that answered: where it ran (its replica's load window prices it) and what it used."""

    model: str  # the public model of the route
    backend: str
    upstream_model: str
    replica: Replica
    usage: dict[str, Any]
    batch: float | None = None  # the mean batch it ran in on its replica (load.py): its price's operating point
    ran: tuple[float, float] | None = None  # its time on the replica (time.monotonic): a trace's upstream span


@dataclass(frozen=True, slots=True)
class Reply:
    """A whole answer, with the public model name and usage filled in."""

    answer: dict[str, Any]
    served: Served
    upstream_seconds: float


class UpstreamError(APIError):
    """Forwarding failed. ``served`` lists upstream calls that did run (and are billed): a backend
    that refused the request with a 4xx, or a cascade's cheap call before its flagship call failed."""

    def __init__(self, status: int, message: str, *, code: str, param: str | None = None,
                 served: tuple[Served, ...] = ()) -> None:
        super().__init__(status, message, code=code, param=param)
        self.served = served

    def after(self, earlier: Served) -> UpstreamError:
        """The same failure, with a call made before it (and billed) listed first."""
        error = UpstreamError(self.status, self.message, code=self.code or "upstream_unavailable", param=self.param,
                              served=(earlier, *self.served))
        error.headers = self.headers
        return error


class UpstreamStream:
    """An upstream stream whose first event has been read. Events can be read one at a time and
    pushed back (the cascade holds some back to judge them); ``close`` ends the upstream request."""

    def __init__(self, response: UpstreamResponse, route: Route, target: Target, replica: Replica, stint: Stint,
                 events: AsyncIterator[sse.Event], first: sse.Event, upstream_seconds: float) -> None:
        self.route, self.target, self.replica, self._stint = route, target, replica, stint
        self.upstream_seconds = upstream_seconds
        self._response = response
        self._events = events
        self._buffer: deque[sse.Event] = deque([first])
        self._closed = False

    async def next_event(self) -> sse.Event | None:
        """The next event, None at the end; raises TransportError if the upstream breaks."""
        if self._buffer:
            return self._buffer.popleft()
        return await anext(self._events, None)

    def unread(self, events: list[sse.Event]) -> None:
        self._buffer.extendleft(reversed(events))

    def served(self, usage: dict[str, Any]) -> Served:
        stint = self._stint
        return Served(self.route.model, self.target.backend.name, self.target.upstream_model, self.replica, usage,
                      self.replica.mean_running(stint), (stint.started, stint.ended or time.monotonic()))

    def close(self) -> None:
        """Close the upstream request (if the engine is still generating, it stops); idempotent."""
        if not self._closed:
            self._closed = True
            self._response.close()
            self.replica.end(self._stint)


Attempt = Callable[[Target, Replica, bytes], Awaitable[_T]]


class Forwarder:
    def __init__(self, pool: UpstreamPool) -> None:
        self.pool = pool
        self._failure_log = _FailureLog()

    async def whole(self, route: Route, endpoint: str, body: dict[str, Any], request_id: str,
                    prefer: Replica | None, deadline_s: float, additions: Additions = NOTHING_ADDED) -> Reply:
        """The first whole answer that is not a retryable failure; raises UpstreamError otherwise."""
        started = time.perf_counter()

        async def attempt(target: Target, replica: Replica, payload: bytes) -> tuple[int, bytes, float, tuple[float, float]]:
            response, stint = await self._post(target, replica, endpoint, payload, request_id)
            try:
                raw = await response.read()
            except TransportError:
                response.close()
                raise
            finally:
                replica.end(stint)
            response.release()
            return response.status, raw, replica.mean_running(stint), (stint.started, stint.ended or stint.started)

        (status, raw, batch, ran), target, replica = await self._walk(route, endpoint, body, prefer, deadline_s, additions,
                                                                      attempt)
        upstream_seconds = time.perf_counter() - started
        metrics.UPSTREAM_TTFB_SECONDS.labels(target.backend.name).observe(upstream_seconds)
        if status != 200:
            raise _rejection(route, target, replica, status, raw)
        try:
            answer = orjson.loads(raw)
        except orjson.JSONDecodeError:
            answer = None
        if not isinstance(answer, dict):
            raise UpstreamError(502, f"backend {target.backend.name} answered with invalid JSON", code="upstream_invalid_response")
        answer["model"] = route.model
        if not isinstance(answer.get("usage"), dict) or not answer["usage"]:  # some engines omit it: estimate
            answer["usage"] = tokens.estimated_usage(body, tokens.count(answer_text(answer)))
        served = Served(route.model, target.backend.name, target.upstream_model, replica, answer["usage"], batch, ran)
        return Reply(answer, served, upstream_seconds)

    async def open_stream(self, route: Route, endpoint: str, body: dict[str, Any], request_id: str,
                          prefer: Replica | None, deadline_s: float, additions: Additions = NOTHING_ADDED) -> UpstreamStream:
        """Open a stream (asking for usage: the gateway bills from it) and read its first event."""
        body = {**body, "stream_options": {**(body.get("stream_options") or {}), "include_usage": True}}
        started = time.perf_counter()

        async def attempt(target: Target, replica: Replica, payload: bytes) -> UpstreamStream | tuple[int, bytes]:
            response, stint = await self._post(target, replica, endpoint, payload, request_id)
            if response.status != 200:
                try:
                    raw = await response.read()
                except TransportError:
                    raw = b""
                finally:
                    replica.end(stint)
                response.release()
                return response.status, raw
            events = sse.iter_events(sse.iter_lines(response.chunks()))
            try:
                first = await anext(events)
            except StopAsyncIteration:
                replica.end(stint)
                response.close()
                raise StreamBroken("stream ended before its first event") from None
            except TransportError:
                replica.end(stint)
                response.close()
                raise
            return UpstreamStream(response, route, target, replica, stint, events, first, time.perf_counter() - started)

        opened, target, replica = await self._walk(route, endpoint, body, prefer, deadline_s, additions, attempt)
        if isinstance(opened, tuple):
            raise _rejection(route, target, replica, *opened)
        metrics.UPSTREAM_TTFB_SECONDS.labels(target.backend.name).observe(opened.upstream_seconds)
        return opened

    def stalled(self, stream: UpstreamStream) -> None:
        """A stream that stopped sending mid-answer (the cascade gave up on it): its replica is marked
        down like one that timed out, and the failure is counted and logged."""
        stream.target.backend.mark_down(stream.replica)
        self._failure_log.failed(stream.target.backend.name, stream.replica.shown_url, ReadTimedOut("stalled mid-answer"))

    async def _post(self, target: Target, replica: Replica, endpoint: str, payload: bytes,
                    request_id: str) -> tuple[UpstreamResponse, Stint]:
        """Send one attempt; a retryable status is a TransportError. The replica counts the request
        in flight from here until the caller has read (or abandoned) the answer (``end(stint)``)."""
        backend = target.backend
        stint = replica.begin()
        try:
            response = await backend.transport.post(replica.url + endpoint, payload,
                                                     {**backend.headers, "x-request-id": request_id})
        except BaseException:
            replica.end(stint)
            raise
        if response.status in RETRYABLE_STATUS:
            replica.end(stint)
            response.release()
            raise TransportError(f"HTTP {response.status}")
        return response, stint

    async def _walk(self, route: Route, endpoint: str, body: dict[str, Any], prefer: Replica | None, deadline_s: float,
                    additions: Additions, attempt: Attempt[_T]) -> tuple[_T, Target, Replica]:
        """Try the route's (target, replica) pairs in turn until one attempt does not fail."""
        failures: list[str] = []
        payloads: dict[Target, bytes] = {}
        current: tuple[Target, Replica] | None = None
        try:
            async with asyncio.timeout(deadline_s):
                for target, replica in self.pool.attempt_plan(route, prefer):
                    current = target, replica
                    payload = payloads.get(target)
                    if payload is None:
                        payload = payloads[target] = upstream_body(body, target, endpoint, additions)
                    try:
                        return await attempt(target, replica, payload), target, replica
                    except TransportError as failure:
                        if isinstance(failure, ConnectFailed | ReadTimedOut):
                            target.backend.mark_down(replica)
                        self._failure_log.failed(target.backend.name, replica.shown_url, failure)
                        failures.append(f"{target.backend.name}: {failure}")
                    current = None
        except TimeoutError:
            if current is not None:  # the attempt under way when the deadline struck: that replica is stuck
                target, replica = current
                target.backend.mark_down(replica)
                self._failure_log.failed(target.backend.name, replica.shown_url,
                                         ReadTimedOut(f"no answer within the {deadline_s:g}s deadline"))
            raise UpstreamError(504, f"no answer within {deadline_s:g}s", code="upstream_timeout") from None
        timed_out = bool(failures) and all("timed out" in f for f in failures)
        raise UpstreamError(504 if timed_out else 502, "no upstream could answer: " + "; ".join(failures),
                            code="upstream_timeout" if timed_out else "upstream_unavailable")


def _rejection(route: Route, target: Target, replica: Replica, status: int, raw: bytes) -> UpstreamError:
    """An upstream 4xx as an OpenAI error; the gateway's own credentials never reach the client."""
    backend = target.backend
    served = (Served(route.model, backend.name, target.upstream_model, replica, {}),)
    if status in (401, 403):
        return UpstreamError(502, f"backend {backend.name} rejected the gateway's credentials",
                             code="upstream_auth_failed", served=served)
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
    return UpstreamError(status if 400 <= status < 500 else 502, message, code=code, param=param, served=served)


class _FailureLog:
    """Counts every failed attempt (``tollgate_upstream_failures_total{backend,reason}``) and logs it,
    at most one line per backend and reason every ten seconds."""

    def __init__(self) -> None:
        self._warnings = Warnings(log)

    def failed(self, backend: str, replica: str, failure: TransportError) -> None:
        reason = _reason(failure)
        metrics.UPSTREAM_ERRORS.labels(backend, reason).inc()
        self._warnings.warn(f"upstream attempt failed: backend {backend} replica {replica}: {failure}", key=f"{backend}|{reason}")


def _reason(failure: TransportError) -> str:
    if isinstance(failure, ConnectFailed):
        return "connect"
    if isinstance(failure, ReadTimedOut):
        return "timeout"
    if isinstance(failure, StreamBroken):
        return "broken"
    text = str(failure)
    return "http_" + text[5:] if text.startswith("HTTP ") else "other"
