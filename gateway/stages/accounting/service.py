"""Admit and record: the request path's two calls into accounting.

``admit`` checks a call against its tenant's and key's limits once its route is known, reserving
what it may use; ``record`` (or ``record_soon`` from a stream's end) writes its ledger record
exactly once, whatever happened to the call, and settles the reservation. Both are one Redis round
trip. Every recorded call is also counted in the Prometheus metrics here, from its record.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wire import tokens

from ...config import Settings
from ...store.fast_redis import ScriptRunner
from ...upstream.pool import Route
from ..pricing import Pricing
from .admission import Admission, Ticket
from .ledger import Ledger
from .limits import CallerLimits, LimitSet, checks_for
from .observe import observe_call
from .record import CallRecord

if TYPE_CHECKING:
    from redis.asyncio import Redis

TEMPLATE_MARGIN_TOKENS = 16  # per call, on top of prompt_token_margin


class Accounting:
    def __init__(self, settings: Settings, redis: Redis, scripts: ScriptRunner, pricing: Pricing) -> None:
        config = settings.limits
        self.default_tenant_limits = LimitSet(**config.tenant.model_dump())
        self.default_key_limits = LimitSet(**config.key.model_dump())
        self.default_output_tokens = config.default_output_tokens
        self.prompt_token_margin = config.prompt_token_margin
        self.non_text_part_tokens = config.non_text_part_tokens
        self.pricing = pricing
        self.scripts = scripts
        # Calls end within the request deadline (a cascade's two calls within two of them).
        hold_ttl_s = int(2 * settings.server.request_timeout_s) + 60
        self.admission = Admission(scripts, config.on_store_error == "open", hold_ttl_s)
        ledger = settings.ledger
        self.ledger = Ledger(redis, scripts, Path(settings.data_dir) / "spool", max_records=ledger.max_records_per_tenant,
                             retention_days=ledger.retention_days, dedupe_ttl_s=ledger.dedupe_ttl_s)

    def output_per_completion(self, body: dict[str, Any]) -> tuple[int, bool]:
        """The most one completion may generate, and whether the client said so (else the default)."""
        for name in ("max_completion_tokens", "max_tokens"):
            value = body.get(name)
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                return value, True
        return self.default_output_tokens, False

    def max_cost_usd(self, routes: Sequence[Route], prompt_tokens: int, output_tokens: int) -> float:
        """The highest price the routes' targets could charge for this call (a cascade may pay for both).
        No prefix is assumed cached: an engine may have evicted it by the time the call runs."""
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": output_tokens}
        return sum(max((self.pricing.worst_case_cost(t.backend.name, t.upstream_model, usage) for t in route.targets),
                       default=0.0) for route in routes)

    def reservation(self, body: dict[str, Any]) -> tuple[int, int, int | None]:
        """A true upper bound of what a call can use: prompt tokens (with the margin for the engine's
        tokenizer and template), output tokens (every completion of every prompt: ``n``, ``best_of``,
        a batch of prompts), and the output cap to send upstream when the client set none."""
        prompt = tokens.prompt_tokens(body, self.non_text_part_tokens)
        prompt += math.ceil(prompt * self.prompt_token_margin) + TEMPLATE_MARGIN_TOKENS
        per_completion, asked = self.output_per_completion(body)
        return prompt, per_completion * tokens.completions_requested(body), None if asked else per_completion

    async def admit(self, limits: CallerLimits, tenant: str, key_id: str, request_id: str, body: dict[str, Any],
                    routes: Sequence[Route], generates: bool = True) -> Ticket:
        """Check and reserve; raises 429 (rate limit or budget). Skipped when nothing is limited.
        ``generates``: False for embeddings (no output tokens to reserve, no output cap to send)."""
        if limits.empty:
            return Ticket()
        prompt, output, cap = self.reservation(body)
        if not generates:  # embeddings: nothing is generated, no cap is sent
            output, cap = 0, None
        bounded = [s for s in (limits.tenant, limits.key) if s.tpm is not None or s.daily_usd is not None
                   or s.monthly_usd is not None]
        needs_cost = any(s.daily_usd is not None or s.monthly_usd is not None for s in bounded)
        max_cost = self.max_cost_usd(routes, prompt, output) if needs_cost else 0.0
        checks = checks_for(limits, tenant, key_id, prompt + output, max_cost)
        return await self.admission.admit(checks, tenant, request_id, cap if bounded else None)

    async def record(self, record: CallRecord, ticket: Ticket | None) -> None:
        observe_call(record)
        await self.ledger.write(record, ticket.settlements(record.total_tokens, record.cost_usd) if ticket else [])

    def record_soon(self, record: CallRecord, ticket: Ticket | None) -> None:
        """Record from a place that may be cancelled (a stream's end): the write runs on its own."""
        observe_call(record)
        self.ledger.write_soon(record, ticket.settlements(record.total_tokens, record.cost_usd) if ticket else [])
