"""The request path, in order: one call from its HTTP request to its ledger record.

    authenticate → parse → moderate → route → prefer a replica → admit → cache
        → forward (or cascade) → price → check the answer → store in the cache → record

Each stage is a function of values (the caller, the body, what earlier stages decided) that returns
a value. What is decided before anything goes upstream makes a frozen ``Plan``; what happened makes
an ``Outcome``; the ledger record is made of the two (``call.record_of``). The steps after the
answer are called here, in order. A streamed answer runs them once, when its response is over,
however it ended (``StreamedAnswer.close``). Every authenticated call leaves exactly one record.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

from cache import exact
from moderation.engine import Verdict

from . import metrics
from .call import Arrival, Marks, Outcome, Plan, Span, record_of, refusal_record
from .errors import APIError
from .logs import Warnings
from .protocol import EMBEDDINGS, ParsedRequest, parse_request
from .stages import cascade
from .stages.accounting.record import CallRecord
from .stages.accounting.service import Accounting
from .stages.auth import Authenticator, model_not_allowed
from .stages.cache import CachedAnswer, ResponseCache
from .stages.cascade import NOT_CASCADED, CascadeResult
from .stages.labels import LabelKeeper
from .stages.moderation import Blocked, Moderation, Screening
from .stages.prefix import CacheSalts, PrefixRouter
from .stages.pricing import Price, Pricing
from .stages.router import Router, Routing, is_routed, task_hint
from .tracing import Tracing
from .upstream.forwarder import Additions, Forwarder, Reply, Served, UpstreamError, UpstreamStream
from .upstream.relay import Relay, RelayRules

throttled = Warnings(logging.getLogger("tollgate.tracing"))


@dataclass(frozen=True, slots=True)
class Incoming:
    """An HTTP request as the pipeline sees it; ``read_body`` reads and decodes the JSON body
    (raising 400, 413 or 499), called only once the caller is authenticated."""

    request_id: str
    endpoint: str  # "/chat/completions" or "/completions"
    authorization: str | None
    cache_control: str | None
    read_body: Callable[[], Awaitable[dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class Answer:
    """A whole answer (or a cache hit), with the plan and outcome its headers are made from."""

    plan: Plan
    outcome: Outcome
    body: dict[str, Any]


class StreamedAnswer:
    """A streamed answer: the relay's bytes for the client. ``close`` must be called once the
    response is over (finished, broken, or the client gone, even before the first byte): it ends
    the upstream call, prices it, stores it in the cache and records it."""

    def __init__(self, pipeline: Pipeline, plan: Plan, head: Outcome, relay: Relay) -> None:
        self.plan = plan
        self.head = head  # what is known when the stream opens: where it comes from, the cascade's decision
        self._pipeline, self._relay = pipeline, relay
        self._closed = False

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._relay.__aiter__()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._pipeline.end_stream(self.plan, self.head, self._relay)


class Pipeline:
    def __init__(self, *, auth: Authenticator, router: Router, forwarder: Forwarder, pricing: Pricing,
                 accounting: Accounting, request_timeout_s: float, moderation: Moderation | None = None,
                 prefix: PrefixRouter | None = None, salts: CacheSalts | None = None, cache: ResponseCache | None = None,
                 labels: LabelKeeper | None = None, tracing: Tracing | None = None) -> None:
        self.auth, self.router, self.forwarder, self.pricing = auth, router, forwarder, pricing
        self.accounting, self.request_timeout_s = accounting, request_timeout_s
        self.moderation, self.prefix, self.salts, self.cache, self.labels = moderation, prefix, salts, cache, labels
        self.tracing = tracing

    async def serve(self, incoming: Incoming) -> Answer | StreamedAnswer:
        try:
            caller = await self.auth.authenticate(incoming.authorization)
        except APIError as err:  # no tenant, so no record: only counted
            metrics.count_unauthenticated(incoming.endpoint, err.status)
            raise
        started = time.perf_counter()
        arrival = Arrival(incoming.request_id, caller.tenant, caller.key_id, incoming.endpoint, started, time.time(),
                          started + self.request_timeout_s, caller.tags)
        body: dict[str, Any] | None = None
        request: ParsedRequest | None = None
        screening: Screening | None = None
        routing: Routing | None = None
        salt: str | None = None
        traced = self.tracing is not None
        try:
            body = await incoming.read_body()
            request = parse_request(body, arrival.endpoint)
            if not caller.may_call(request.model):
                raise model_not_allowed(request.model, caller.models)
            generates = arrival.endpoint != EMBEDDINGS
            screened = time.perf_counter() if traced else 0.0
            if self.moderation is not None and generates:
                screening = await self.moderation.screen(body, caller.moderation, caller.tenant)
                body = screening.body
            routed = time.perf_counter() if traced else 0.0
            if not generates and is_routed(request.model):
                raise APIError(400, "embeddings are not routed: name an embedding model", code="invalid_value", param="model")
            hint, body = task_hint(body)
            routing = self.router.route(request.model, body, caller.tenant, single_answer=request.outputs == 1,
                                        hint=hint or caller.task)
            salt = self.salts.of(caller.cache_group or caller.tenant) if self.salts is not None else None
            preference = await self.prefix.choose(body, routing.route, salt or "") if self.prefix is not None else None
            admitted = time.perf_counter() if traced else 0.0
            routes = (routing.route, routing.escalation.route) if routing.escalation else (routing.route,)
            ticket = await self.accounting.admit(caller.limits, caller.tenant, caller.key_id, arrival.request_id, body,
                                                 routes, generates)
        except APIError as err:
            verdict = err.verdict if isinstance(err, Blocked) else (screening.verdict if screening else None)
            record = refusal_record(arrival, Outcome(err.status, err.code), time.perf_counter(), body, request, verdict, routing)
            recorded = time.perf_counter()
            await asyncio.shield(self.accounting.record(record, None))
            self._trace(arrival, record, (), None, None, recorded)
            raise
        marks = None
        if traced:
            moderated = (screened, routed) if self.moderation is not None else None
            marks = Marks(moderated, (routed, admitted), (admitted, time.perf_counter()))
        cache = None
        if self.cache is not None:
            cache = self.cache.rule(caller.tenant, arrival.endpoint, routing.kind, routing.route.model, body,
                                    incoming.cache_control)
        plan = Plan(arrival, request, body, screening, routing, preference, ticket, cache, Additions(ticket.output_cap, salt),
                    marks)
        try:
            return await self._answer(plan)
        except APIError as err:
            err.headers = {**ticket.headers(), **err.headers}
            raise
        except asyncio.CancelledError:
            self._record_soon(plan, Outcome(499, "client_disconnected"))
            raise
        except Exception:
            await self._record(plan, Outcome(500, "internal_error"))
            raise

    async def _answer(self, plan: Plan) -> Answer | StreamedAnswer:
        if self.cache is not None and plan.cache is not None:
            cached = await self.cache.lookup(plan.cache, plan.arrival.tenant)
            if cached is not None:
                return await self._from_cache(plan, cached)
        if plan.request.stream:
            return await self._open_stream(plan)
        return await self._whole(plan)

    async def _from_cache(self, plan: Plan, cached: CachedAnswer) -> Answer:
        """A hit costs nothing; its record carries what the original call cost (the saving)."""
        answer = exact.replayed(cached.answer, plan.arrival.request_id)
        answer["model"] = plan.routing.route.model
        outcome = Outcome(answered=True, cached=cached)
        await self._record(plan, outcome)
        return Answer(plan, outcome, answer)

    async def _forward_whole(self, plan: Plan) -> tuple[Reply, CascadeResult]:
        arrival, routing = plan.arrival, plan.routing
        prefer = plan.preference.replica if plan.preference else None
        if routing.escalation is not None:
            return await cascade.whole(self.forwarder, routing.route, routing.escalation, arrival.endpoint, plan.body,
                                       arrival.request_id, prefer, arrival.deadline, plan.additions)
        reply = await self.forwarder.whole(routing.route, arrival.endpoint, plan.body, arrival.request_id, prefer,
                                           arrival.deadline - time.perf_counter(), plan.additions)
        return reply, NOT_CASCADED

    async def _forward_stream(self, plan: Plan) -> tuple[UpstreamStream, CascadeResult]:
        arrival, routing = plan.arrival, plan.routing
        prefer = plan.preference.replica if plan.preference else None
        if routing.escalation is not None:
            return await cascade.open_stream(self.forwarder, routing.route, routing.escalation, arrival.endpoint,
                                             plan.body, arrival.request_id, prefer, arrival.deadline, plan.additions)
        stream = await self.forwarder.open_stream(routing.route, arrival.endpoint, plan.body, arrival.request_id, prefer,
                                                  arrival.deadline - time.perf_counter(), plan.additions)
        return stream, NOT_CASCADED

    def _price(self, served: tuple[Served, ...]) -> tuple[Price, Span | None]:
        """The calls' price, and (tracing on) when it was worked out."""
        if self.tracing is None:
            return self.pricing.price_calls(served), None
        started = time.perf_counter()
        price = self.pricing.price_calls(served)
        return price, (started, time.perf_counter())

    async def _failed(self, plan: Plan, err: UpstreamError) -> None:
        """Forwarding failed: recorded with the upstream calls that did run (they are billed)."""
        price, priced = self._price(err.served) if err.served else (None, None)
        await self._record(plan, Outcome(err.status, err.code, err.served, price, pricing_span=priced))

    async def _whole(self, plan: Plan) -> Answer:
        try:
            reply, how = await self._forward_whole(plan)
        except UpstreamError as err:
            await self._failed(plan, err)
            raise
        served = (how.prior, reply.served) if how.prior else (reply.served,)
        price, priced = self._price(served)
        if plan.arrival.endpoint == EMBEDDINGS:  # no flagship would have answered instead: nothing saved
            price = replace(price, flagship_cost_usd=price.cost_usd)
        self._remember_replica(plan, reply.served)
        answer, verdict = reply.answer, None
        if how.strip_logprobs:
            for choice in answer.get("choices") or ():
                choice.pop("logprobs", None)
        if self.moderation is not None and plan.screening is not None and plan.screening.checks_answer:
            try:
                answer, verdict = await self.moderation.check_answer(answer, plan.screening, plan.arrival.tenant)
            except Blocked as err:  # the answer was made, so it is billed
                await self._record(plan, Outcome(err.status, err.code, served, price, False, how.escalated, how.confidence,
                                                 escalation_reason=how.reason, answer_verdict=err.verdict,
                                                 upstream_seconds=reply.upstream_seconds, pricing_span=priced))
                raise
        if self.cache is not None and plan.cache is not None:
            self.cache.store_soon(plan.cache, answer, price.cost_usd, price.flagship_cost_usd)
        outcome = Outcome(200, None, served, price, True, how.escalated, how.confidence, how.reason,
                          answer_verdict=verdict, upstream_seconds=reply.upstream_seconds, pricing_span=priced)
        await self._record(plan, outcome)
        return Answer(plan, outcome, answer)

    async def _open_stream(self, plan: Plan) -> StreamedAnswer:
        try:
            stream, how = await self._forward_stream(plan)
        except UpstreamError as err:
            await self._failed(plan, err)
            raise
        window = None
        if self.moderation is not None and plan.screening is not None and plan.screening.watches_stream:
            window = self.moderation.window(plan.screening)
        assembler = self.cache.assembler(plan.cache) if self.cache is not None else None
        arrival = plan.arrival
        rules = RelayRules(stream.route.model, arrival.endpoint, plan.request.include_usage, how.strip_logprobs,
                           arrival.started, arrival.deadline)
        relay = Relay(stream, rules, plan.body, window, assembler)
        prior = (how.prior,) if how.prior else ()
        head = Outcome(served=(*prior, stream.served({})), answered=True, escalated=how.escalated,
                       confidence=how.confidence, escalation_reason=how.reason, upstream_seconds=stream.upstream_seconds)
        return StreamedAnswer(self, plan, head, relay)

    def end_stream(self, plan: Plan, head: Outcome, relay: Relay) -> None:
        """A stream is over: close the upstream, price what it generated, store and record it."""
        end = relay.close()
        served = (*head.served[:-1], relay.stream.served(end.usage))
        price, priced = self._price(served)
        self._remember_replica(plan, served[-1])
        if end.answer is not None and self.cache is not None and plan.cache is not None:
            self.cache.store_soon(plan.cache, end.answer, price.cost_usd, price.flagship_cost_usd)
        verdict: Verdict | None = relay.window.verdict if relay.window is not None else None
        self._record_soon(plan, Outcome(200, end.error_code, served, price, True, head.escalated, head.confidence,
                                        head.escalation_reason, answer_verdict=verdict, upstream_seconds=head.upstream_seconds,
                                        ttft_s=end.ttft_s, pricing_span=priced))

    def _remember_replica(self, plan: Plan, served: Served) -> None:
        if self.prefix is not None and plan.preference is not None:
            self.prefix.served(plan.preference, served.replica)

    async def _record(self, plan: Plan, outcome: Outcome) -> None:
        record = record_of(plan, outcome, time.perf_counter())
        recorded = time.perf_counter() if self.tracing is not None else 0.0
        # Shielded: a client that hangs up must not cancel the write of what it cost.
        await asyncio.shield(self.accounting.record(record, plan.ticket))
        self._trace(plan.arrival, record, outcome.served, plan.marks, outcome.pricing_span, recorded)
        self._keep_label(plan, outcome)

    def _record_soon(self, plan: Plan, outcome: Outcome) -> None:
        record = record_of(plan, outcome, time.perf_counter())
        recorded = time.perf_counter() if self.tracing is not None else 0.0
        self.accounting.record_soon(record, plan.ticket)
        self._trace(plan.arrival, record, outcome.served, plan.marks, outcome.pricing_span, recorded)
        self._keep_label(plan, outcome)

    def _trace(self, arrival: Arrival, record: CallRecord, served: tuple[Served, ...], marks: Marks | None,
               priced: Span | None, recorded: float) -> None:
        """Tracing on: the finished call as a trace. A tracing fault never fails a request."""
        if self.tracing is None:
            return
        try:
            self.tracing.emit(arrival, record, served, marks, priced, (recorded, time.perf_counter()))
        except Exception as err:  # the SDK's or an exporter's bug: say so, serve on
            throttled.warn(f"trace not emitted: {type(err).__name__}: {err}", key="tracing")

    def _keep_label(self, plan: Plan, outcome: Outcome) -> None:
        """Cascade outcomes that judged the cheap model become router training labels; calls that
        failed or were cut, and escalations the infrastructure caused, say nothing about it."""
        if (self.labels is not None and plan.routing.kind == "cascade" and outcome.answered
                and outcome.error_code is None and outcome.escalation_reason not in cascade.INFRASTRUCTURE):
            self.labels.keep(plan.body, plan.arrival.tenant, outcome.confidence, outcome.escalation_reason)
