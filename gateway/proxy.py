"""One call through the gateway: what it knows (``Call``), its price, and whole (non-streamed) answers.

The client's JSON is forwarded as it came, with ``model`` set to the backend's name for it;
answers carry the public model name back. Streamed answers are in ``streaming.py``.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Awaitable, Callable

import aiohttp
import orjson
from starlette.responses import Response

from . import metrics, tokens
from .billing import Billing, Price
from .errors import APIError
from .upstream import Attempt, Replica, Route, UpstreamPool

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
    escalation_route: Route | None = None  # a cascade: where it goes if the cheap answer is unsure
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
    prefer: Replica | None = None  # prefix-aware choice: the replica holding the prompt's prefix
    expected_cached_tokens: int = 0
    on_served: Callable[[Attempt], None] | None = None  # e.g. remember which replica holds the prefix
    finish: Callable[[], None] | None = None  # records the call when a stream ends
    ended: bool = False  # a stream's end has been billed and recorded

    def release(self) -> None:
        """Drop the callbacks once the call is recorded: they refer back to the call, and the
        reference cycles would otherwise wait for the garbage collector (measured as 20-30 ms p99
        pauses under load) instead of being freed at once."""
        self.finish = self.check_answer = self.on_answer = self.on_served = None

    def served_by(self, attempt: Attempt) -> None:
        self.backend, self.replica = attempt.target.backend.name, attempt.replica.url
        if self.route is not None:
            self.models_run.append(self.route.model)
        if self.on_served is not None:
            self.on_served(attempt)


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


def answer_headers(call: Call, attempt: Attempt) -> dict[str, str]:
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
    return Response(orjson.dumps(answer), media_type="application/json", headers=answer_headers(call, attempt))


async def fetch_whole(pool: UpstreamPool, billing: Billing, call: Call, body: dict, deadline_s: float) -> tuple[dict, Attempt]:
    """Send ``body`` on the call's route and read the whole answer; the call is priced from it."""
    try:
        async with asyncio.timeout(deadline_s):
            upstream_started = time.perf_counter()
            attempt = await pool.send(call.route, call.endpoint, body, call.request_id, prefer=call.prefer)
            try:
                raw = await attempt.response.read()
            finally:
                attempt.response.release()
                attempt.done()
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
