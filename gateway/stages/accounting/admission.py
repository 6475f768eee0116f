"""Admission: one atomic Redis script checks every limit of a call and reserves what it may use.

Requests and the call's most tokens are taken from the minute counters at once; its most cost is
*held* on the budget counters and settled with the real cost when the call is recorded. Since what
is reserved is an upper bound of what the call can use, concurrent calls never take a counter past
its limit. When Redis cannot be reached the configured policy decides: fail open (admit, counted
when recorded) or closed (503). What a reservation was is kept in Redis beside the counters
(``scripts.py``), so an admission the gateway gave up on is still settled exactly once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from redis.exceptions import RedisError

from ... import metrics
from ...errors import APIError
from ...logs import Warnings
from ...store.fast_redis import ScriptRunner
from .limits import Check, admission_key, format_reset, format_usd, holds_key, recorded_key, usd_to_nano
from .periods import seconds_to_reset
from .scripts import ADMIT

log = logging.getLogger("tollgate.limits")
_HEADER_NAMES = {"rpm": "requests", "tpm": "tokens"}


@dataclass(frozen=True)
class Ticket:
    """What admission granted a call; the ledger settles it when the call is recorded."""

    checks: list[Check] = field(default_factory=list)
    values: list[int] = field(default_factory=list)  # used + held after admission
    now_s: int = 0  # 0: nothing reserved (the store was unreachable, or the admission came too late)
    output_cap: int | None = None  # the output tokens reserved per completion, when the body set none

    def headers(self) -> dict[str, str]:
        """OpenAI's ``x-ratelimit-*`` headers, from the tightest of the tenant and key limits."""
        headers: dict[str, str] = {}
        for name, label in _HEADER_NAMES.items():
            tightest = None
            for check, value in zip(self.checks, self.values, strict=True):
                if check.name == name and (tightest is None or check.limit - value < tightest[1]):
                    tightest = (check.limit, check.limit - value)
            if tightest is None or not self.now_s:
                continue
            headers[f"x-ratelimit-limit-{label}"] = str(tightest[0])
            headers[f"x-ratelimit-remaining-{label}"] = str(max(tightest[1], 0))
            headers[f"x-ratelimit-reset-{label}"] = format_reset(seconds_to_reset("m", self.now_s))
        return headers

    def settlements(self, tokens: int, cost_usd: float) -> list[tuple[str, str, int]]:
        """Per counter: (key, kind, what the call used). The record script settles each against what
        admission reserved (the admission marker), or counts it now if nothing was reserved."""
        spent = usd_to_nano(cost_usd)
        used = {"rpm": 1, "tpm": tokens}
        return [(check.key, check.kind, used.get(check.name, spent)) for check in self.checks]


class Admission:
    def __init__(self, scripts: ScriptRunner, fail_open: bool, hold_ttl_s: int) -> None:
        self.scripts = scripts
        self.fail_open = fail_open
        self.warnings = Warnings(log)
        # A budget hold outlives any call (the request deadline bounds them); past it, the hold of a
        # call that was never recorded (its gateway died) is released by the next admission.
        self.hold_ttl_s = hold_ttl_s

    async def admit(self, checks: list[Check], tenant: str, request_id: str, output_cap: int | None = None) -> Ticket:
        """Reserve the call's share of every limit, or raise 429 naming the limit it would break.

        ``request_id`` names the call's reservation; its ledger record settles it.
        """
        if not checks:
            return Ticket(output_cap=output_cap)
        keys = [c.key for c in checks] + [holds_key(c.key) for c in checks]
        keys += [admission_key(tenant, request_id), recorded_key(tenant, request_id)]
        args = [part for c in checks for part in (c.kind, c.limit, c.amount)] + [request_id, self.hold_ttl_s]
        try:
            reply = await self.scripts.run(ADMIT, keys, args)
        except (RedisError, OSError) as err:
            return self._store_down(checks, tenant, err, output_cap)
        status, failed, now_s = int(reply[0]), int(reply[1]), int(reply[2])
        values = [int(v) for v in reply[4::2]]
        if status == 2:  # recorded already: nothing was reserved
            return Ticket(checks, [0] * len(checks), 0, output_cap)
        ticket = Ticket(checks, values, now_s, output_cap)
        if status == 0:
            raise _rejection(checks[failed - 1], values[failed - 1], now_s, ticket, tenant)
        return ticket

    def _store_down(self, checks: list[Check], tenant: str, err: Exception, output_cap: int | None) -> Ticket:
        metrics.STORE_ERRORS.labels("limits").inc()
        if not self.fail_open:
            raise APIError(503, "limit store unavailable, try again", code="store_unavailable") from err
        self.warnings.warn(f"limits not enforced: store unreachable ({type(err).__name__}); calls are counted when recorded")
        return Ticket(checks, [0] * len(checks), 0, output_cap)


def _rejection(check: Check, current: int, now_s: int, ticket: Ticket, tenant: str) -> APIError:
    retry_after = seconds_to_reset(check.kind, now_s)
    headers = {**ticket.headers(), "retry-after": str(retry_after)}
    metrics.REJECTIONS.labels(tenant, check.name).inc()
    who = "tenant" if check.scope == "tenant" else "API key"
    if check.name in _HEADER_NAMES:
        unit = _HEADER_NAMES[check.name]
        if check.amount > check.limit:
            message = (f"Request too large: it may use {check.amount} {unit} but the {who} limit is "
                       f"{check.limit} {unit} per minute. Lower max_tokens or shorten the prompt.")
        else:
            message = (f"Rate limit reached for {unit} per minute ({who}): limit {check.limit}, "
                       f"used {current}, this request needs {check.amount}. Retry after {retry_after}s.")
        return APIError(429, message, code="rate_limit_exceeded", type=unit, headers=headers)
    period = "daily" if check.kind == "d" else "monthly"
    budget, spent, cost = format_usd(check.limit), format_usd(current), format_usd(check.amount)
    if check.amount > check.limit:
        message = (f"Request too large: it may cost up to {cost}, more than the {who}'s whole {period} budget of "
                   f"{budget}. Lower max_tokens or n, or shorten the prompt.")
    else:
        message = (f"The {who}'s {period} budget of {budget} cannot cover this request: {spent} is spent or reserved, "
                   f"{format_usd(max(check.limit - current, 0))} remains, and this request may cost up to {cost}. "
                   f"Retry after {retry_after}s, when the budget renews.")
    return APIError(429, message, code="insufficient_quota", type="insufficient_quota", headers=headers)
