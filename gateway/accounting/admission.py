"""Admission: one atomic Redis script checks every limit of a call and reserves what it may use.

Requests and estimated tokens are taken from the minute counters at once; the call's maximum
possible cost is *held* on the budget counters and settled with the real cost when the call is
recorded, so concurrent calls overshoot a budget by no more than what is in flight. When Redis
cannot be reached the configured policy decides: fail open (admit, counted later) or closed (503).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from redis.exceptions import RedisError

from .. import metrics
from ..errors import APIError
from ..fast_redis import ScriptRunner
from .limits import Check, format_reset, holds_key, usd_to_nano
from .periods import seconds_to_reset
from .scripts import ADMIT

log = logging.getLogger("tollgate.limits")
_HEADER_NAMES = {"rpm": "requests", "tpm": "tokens"}


@dataclass
class Ticket:
    """What admission granted a call; the ledger settles it when the call is recorded."""

    checks: list[Check] = field(default_factory=list)
    windows: list[int] = field(default_factory=list)  # -1: nothing reserved (store was down)
    values: list[int] = field(default_factory=list)  # used + held after admission
    now_s: int = 0

    def headers(self) -> dict[str, str]:
        """OpenAI's ``x-ratelimit-*`` headers, from the tightest of the tenant and key limits."""
        headers: dict[str, str] = {}
        for name, label in _HEADER_NAMES.items():
            tightest = None
            for check, value in zip(self.checks, self.values):
                if check.name == name and (tightest is None or check.limit - value < tightest[1]):
                    tightest = (check.limit, check.limit - value)
            if tightest is None or not self.now_s:
                continue
            headers[f"x-ratelimit-limit-{label}"] = str(tightest[0])
            headers[f"x-ratelimit-remaining-{label}"] = str(max(tightest[1], 0))
            headers[f"x-ratelimit-reset-{label}"] = format_reset(seconds_to_reset("m", self.now_s))
        return headers

    def settlements(self, tokens: int, cost_usd: float) -> list[tuple[str, str, int, int, int]]:
        """Per counter: (key, kind, window at admission, used delta, held to release)."""
        out = []
        spent = usd_to_nano(cost_usd)
        for check, window in zip(self.checks, self.windows):
            reserved = window >= 0
            if check.name == "rpm":
                if not reserved:
                    out.append((check.key, check.kind, -1, 1, 0))
            elif check.name == "tpm":
                out.append((check.key, check.kind, window, tokens - (check.amount if reserved else 0), 0))
            else:
                out.append((check.key, check.kind, window, spent, check.amount if reserved else 0))
        return out


class Admission:
    def __init__(self, scripts: ScriptRunner, fail_open: bool, hold_ttl_s: int) -> None:
        self.scripts = scripts
        self.fail_open = fail_open
        # A budget hold outlives any call (the request deadline bounds them); past it, the hold of a
        # call that was never recorded (its gateway died) is released by the next admission.
        self.hold_ttl_s = hold_ttl_s

    async def admit(self, checks: list[Check], tenant: str, request_id: str) -> Ticket:
        """Reserve the call's share of every limit, or raise 429 naming the limit it would break.

        ``request_id`` names the call's budget holds; its ledger record releases them.
        """
        if not checks:
            return Ticket()
        keys = [c.key for c in checks] + [holds_key(c.key) for c in checks]
        args = [part for c in checks for part in (c.kind, c.limit, c.amount)] + [request_id, self.hold_ttl_s]
        try:
            reply = await self.scripts.run(ADMIT, keys, args)
        except (RedisError, OSError) as err:
            return self._store_down(checks, tenant, err)
        allowed, failed, now_s = int(reply[0]), int(reply[1]), int(reply[2])
        windows = [int(w) for w in reply[3::2]]
        values = [int(v) for v in reply[4::2]]
        ticket = Ticket(checks, windows, values, now_s)
        if not allowed:
            raise _rejection(checks[failed - 1], values[failed - 1], now_s, ticket, tenant)
        return ticket

    def _store_down(self, checks: list[Check], tenant: str, err: Exception) -> Ticket:
        metrics.STORE_ERRORS.labels("limits").inc()
        if not self.fail_open:
            raise APIError(503, "limit store unavailable, try again", code="store_unavailable") from err
        log.warning("limits not enforced for tenant %s: store unreachable (%s)", tenant, type(err).__name__)
        return Ticket(checks, [-1] * len(checks), [0] * len(checks), 0)


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
    message = (f"The {who}'s {period} budget of ${check.limit / 1e9:.2f} is used up "
               f"(spent or reserved ${current / 1e9:.4f}; this request may cost up to ${check.amount / 1e9:.4f}).")
    return APIError(429, message, code="insufficient_quota", type="insufficient_quota", headers=headers)
