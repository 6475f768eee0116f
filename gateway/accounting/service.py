"""Accounting on the request path: admit a call against its limits, and record it when it ends.

The route handler calls ``admit`` once the model is known and ``record`` (or ``record_soon`` from
a stream's end) exactly once per call, whatever happened to it. Both are one Redis round trip.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from .. import tokens
from ..billing import Billing
from ..config import Settings
from ..fast_redis import ScriptRunner
from .admission import Admission, Ticket
from .ledger import Ledger
from .limits import CallerLimits, LimitSet, checks_for
from .record import CallRecord

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from ..proxy import Call


TEMPLATE_MARGIN_TOKENS = 16


class Accounting:
    def __init__(self, settings: Settings, redis: Redis, scripts: ScriptRunner, billing: Billing) -> None:
        config = settings.limits
        self.default_tenant_limits = LimitSet(**config.tenant.model_dump())
        self.default_key_limits = LimitSet(**config.key.model_dump())
        self.default_output_tokens = config.default_output_tokens
        self.billing = billing
        self.scripts = scripts
        # Calls end within the request deadline (a cascade's two calls within two of them).
        hold_ttl_s = int(2 * settings.server.request_timeout_s) + 60
        self.admission = Admission(scripts, config.on_store_error == "open", hold_ttl_s)
        ledger = settings.ledger
        self.ledger = Ledger(redis, scripts, Path(settings.data_dir) / "spool", max_records=ledger.max_records_per_tenant,
                             retention_days=ledger.retention_days, dedupe_ttl_s=ledger.dedupe_ttl_s)

    def output_budget(self, body: dict) -> int:
        """The most the call may generate: what the client asked for, else the configured default."""
        for name in ("max_completion_tokens", "max_tokens"):
            value = body.get(name)
            if isinstance(value, int) and value > 0:
                return value
        return self.default_output_tokens

    def max_cost_usd(self, call: Call, prompt_tokens: int, output_tokens: int) -> float:
        """The highest price any of the route's targets could charge for this call."""
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": output_tokens,
                 "prompt_tokens_details": {"cached_tokens": min(call.expected_cached_tokens, prompt_tokens)}}
        total = 0.0
        for route in (call.route, call.escalation_route):  # a cascade may pay for both calls
            if route is not None:
                total += max((self.billing.worst_case_cost(t.backend.name, t.upstream_model, usage) for t in route.targets),
                             default=0.0)
        return total

    async def admit(self, call: Call, limits: CallerLimits) -> Ticket:
        """Check and reserve; raises 429 (rate limit or budget). Skipped when nothing is limited."""
        if limits.empty:
            call.ticket = Ticket()
            return call.ticket
        prompt = tokens.prompt_tokens(call.body)
        output = self.output_budget(call.body)
        # The engine's chat template and tokenizer are not the gateway's: hold a margin so that calls
        # admitted together on estimates do not overshoot the limit; usage reconciles it afterwards.
        call.reserved_tokens = prompt + prompt // 10 + TEMPLATE_MARGIN_TOKENS + output
        needs_cost = any(getattr(s, n) is not None for s in (limits.tenant, limits.key) for n in ("daily_usd", "monthly_usd"))
        max_cost = self.max_cost_usd(call, prompt, output) if needs_cost else 0.0
        checks = checks_for(limits, call.tenant, call.key_id, call.reserved_tokens, max_cost)
        call.ticket = await self.admission.admit(checks, call.tenant, call.request_id)
        return call.ticket

    async def record(self, call: Call) -> None:
        record = record_of(call)
        await self.ledger.write(record, self._settlements(call, record))

    def record_soon(self, call: Call) -> None:
        record = record_of(call)
        self.ledger.write_soon(record, self._settlements(call, record))

    @staticmethod
    def _settlements(call: Call, record: CallRecord) -> list:
        if call.ticket is None:
            return []
        return call.ticket.settlements(record.total_tokens, record.cost_usd)


def record_of(call: Call) -> CallRecord:
    """The ledger record of a call, from what the gateway learned while serving it."""
    usage, prior = call.usage or {}, call.prior_usage or {}
    decision = call.decision
    price = call.price
    return CallRecord(
        request_id=call.request_id,
        ts=call.wall_started,
        tenant=call.tenant,
        key_id=call.key_id,
        endpoint=call.endpoint,
        requested_model=call.requested_model[:200],
        model=call.route.model if call.route and call.answered else "",
        models=list(call.models_run),
        backend=call.backend,
        replica=call.replica,
        route=call.route_kind,
        stream=call.stream,
        status=call.status,
        error_code=call.error_code,
        prompt_tokens=_tokens(usage, "prompt_tokens") + _tokens(prior, "prompt_tokens"),
        cached_tokens=_cached(usage) + _cached(prior),
        completion_tokens=_tokens(usage, "completion_tokens") + _tokens(prior, "completion_tokens"),
        usage_estimated=bool(usage.get("estimated") or prior.get("estimated")),
        cost_usd=price.cost_usd if price else 0.0,
        flagship_cost_usd=call.cache_flagship_usd if call.cache_hit else (price.flagship_cost_usd if price else None),
        cost_source="cache" if call.cache_hit else (price.source if price else ""),
        cache="exact" if call.cache_hit else "none",
        cache_saved_usd=call.cache_saved_usd,
        router_score=round(decision.score, 6) if decision else None,
        router_threshold=decision.threshold if decision else None,
        escalated=call.escalated,
        cascade_confidence=call.confidence,
        moderation=call.moderation.action if call.moderation else "none",
        moderation_categories=sorted(c for c, a in call.moderation.categories.items() if a != "allow") if call.moderation else [],
        latency_ms=round((time.perf_counter() - call.started) * 1000, 3),
        ttft_ms=round(call.ttft_s * 1000, 3) if call.ttft_s is not None else None,
    )


def _tokens(usage: dict, name: str) -> int:
    return int(usage.get(name) or 0)


def _cached(usage: dict) -> int:
    details = usage.get("prompt_tokens_details") or {}
    return int(details.get("cached_tokens") or 0) if isinstance(details, dict) else 0
