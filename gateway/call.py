"""One call's values: what was decided before anything was sent (``Plan``), and what happened
(``Outcome``). Both are frozen: stages return values, the pipeline builds these from them, and the
ledger record is a pure function of the two (``record_of``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from moderation.engine import Verdict
from wire import tokens

from .protocol import ParsedRequest, requested_model
from .stages.accounting.admission import Ticket
from .stages.accounting.record import CallRecord, Part
from .stages.cache import CachedAnswer, CacheRule
from .stages.moderation import Screening
from .stages.prefix import Preference
from .stages.pricing import Price
from .stages.router import Routing
from .upstream.forwarder import Additions, Served


@dataclass(frozen=True, slots=True)
class Arrival:
    """Who called, when, on which endpoint: all an authenticated call needs to be recorded."""

    request_id: str
    tenant: str
    key_id: str
    endpoint: str  # "/chat/completions" or "/completions"
    started: float  # time.perf_counter()
    wall_started: float  # time.time()
    deadline: float  # perf_counter: the call's time is up (retries included)
    tags: tuple[str, ...] = ()  # the key's tags: report rows of their own


Span = tuple[float, float]  # (start, end), time.perf_counter seconds


@dataclass(frozen=True, slots=True)
class Marks:
    """When the stages before the upstream ran: taken only while tracing is on (``tracing.py``)."""

    moderation: Span | None = None
    routing: Span | None = None
    admission: Span | None = None


@dataclass(frozen=True, slots=True)
class Plan:
    """Everything decided before anything is sent upstream."""

    arrival: Arrival
    request: ParsedRequest
    body: dict[str, Any]  # what goes upstream: the client's JSON, redacted where moderation says
    screening: Screening | None  # None: moderation is off
    routing: Routing
    preference: Preference | None  # a replica holding the prompt's prefix
    ticket: Ticket  # what admission reserved
    cache: CacheRule | None  # None: not cacheable
    additions: Additions  # what the gateway adds to the body upstream (an output cap, a cache salt)
    marks: Marks | None = None  # tracing on: when its stages ran


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to a call."""

    status: int = 200
    error_code: str | None = None
    served: tuple[Served, ...] = ()  # the upstream calls that ran, in order (an escalated cascade: two)
    price: Price | None = None
    answered: bool = False  # an answer was (or started being) sent
    escalated: bool = False
    confidence: float | None = None  # the cascade's confidence in the cheap answer
    escalation_reason: str | None = None  # why the cascade escalated (stages.cascade's reasons)
    cached: CachedAnswer | None = None  # answered from the exact cache
    answer_verdict: Verdict | None = None  # what the output checks found
    upstream_seconds: float | None = None
    ttft_s: float | None = None
    pricing_span: Span | None = None  # tracing on: when the call was priced


def verdict_of(plan: Plan, outcome: Outcome) -> Verdict | None:
    """What moderation found in the prompts and in the answer, together."""
    verdict = plan.screening.verdict if plan.screening else None
    if outcome.answer_verdict is None:
        return verdict
    merged = Verdict()
    if verdict is not None:
        merged.merge(verdict)
    merged.merge(outcome.answer_verdict)
    return merged


def record_of(plan: Plan, outcome: Outcome, now: float) -> CallRecord:
    """The ledger record of a call that was planned (``now``: perf_counter at its end)."""
    return _record(plan.arrival, outcome, now, requested=plan.request.model, stream=plan.request.stream,
                   verdict=verdict_of(plan, outcome), routing=plan.routing)


def refusal_record(arrival: Arrival, outcome: Outcome, now: float, body: dict[str, Any] | None,
                   request: ParsedRequest | None, verdict: Verdict | None, routing: Routing | None) -> CallRecord:
    """The ledger record of a call refused before it was planned (bad body, policy, model, limit)."""
    return _record(arrival, outcome, now, requested=request.model[:200] if request else requested_model(body),
                   stream=bool(request and request.stream), verdict=verdict, routing=routing)


def _record(arrival: Arrival, outcome: Outcome, now: float, *, requested: str, stream: bool,
            verdict: Verdict | None, routing: Routing | None) -> CallRecord:
    served, price, cached = outcome.served, outcome.price, outcome.cached
    last = served[-1] if served else None
    usages = [s.usage for s in served]
    decision = routing.decision if routing else None
    shadow = routing.shadow if routing else None
    return CallRecord(
        request_id=arrival.request_id,
        ts=arrival.wall_started,
        tenant=arrival.tenant,
        key_id=arrival.key_id,
        tags=list(arrival.tags),
        endpoint=arrival.endpoint,
        requested_model=requested[:200],
        model=(last.model if last else routing.route.model if routing else "") if outcome.answered else "",
        models=[s.model for s in served],
        routed_model=routing.route.model if routing else "",
        parts=_parts(served, price),
        backend=last.backend if last else "",
        replica=last.replica.shown_url if last else "",
        route=routing.kind if routing else "direct",
        stream=stream,
        status=outcome.status,
        error_code=outcome.error_code,
        prompt_tokens=sum(tokens.usage_count(u, "prompt_tokens") for u in usages),
        cached_tokens=sum(tokens.cached_tokens(u) for u in usages),
        completion_tokens=sum(tokens.usage_count(u, "completion_tokens") for u in usages),
        usage_estimated=any(bool(u.get("estimated")) for u in usages),
        cost_usd=price.cost_usd if price else 0.0,
        flagship_cost_usd=cached.flagship_cost_usd if cached else (price.flagship_cost_usd if price else None),
        cost_source="cache" if cached else (price.source if price else ""),
        cache="exact" if cached else "none",
        cache_saved_usd=cached.cost_usd if cached else 0.0,
        router_score=round(decision.score, 6) if decision else None,
        router_threshold=decision.threshold if decision else None,
        router_version=decision.router if decision else "",
        shadow_score=round(shadow.score, 6) if shadow else None,
        shadow_model=shadow.model if shadow else "",
        shadow_version=shadow.router if shadow else "",
        escalated=outcome.escalated,
        cascade_confidence=outcome.confidence,
        escalation_reason=outcome.escalation_reason,
        moderation=verdict.action if verdict else "none",
        moderation_categories=sorted(c for c, a in verdict.categories.items() if a != "allow") if verdict else [],
        latency_ms=round((now - arrival.started) * 1000, 3),
        ttft_ms=round(outcome.ttft_s * 1000, 3) if outcome.ttft_s is not None else None,
        upstream_ms=round(outcome.upstream_seconds * 1000, 3) if outcome.upstream_seconds is not None else None,
    )


def _parts(served: tuple[Served, ...], price: Price | None) -> list[Part]:
    """Each upstream call's own tokens and cost, when a call made several (reports split them)."""
    if len(served) < 2 or price is None or len(price.parts) != len(served):
        return []
    return [Part(s.model, s.backend, tokens.usage_count(s.usage, "prompt_tokens"), tokens.cached_tokens(s.usage),
                 tokens.usage_count(s.usage, "completion_tokens"), cost) for s, cost in zip(served, price.parts, strict=True)]
