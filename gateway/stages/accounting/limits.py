"""Which limits apply to a call, as plain data: the checks one admission script runs at once.

A call is checked against its tenant's limits and its key's limits: requests and tokens per UTC
minute, and USD per UTC day and month. Values come from the config's defaults, overridden per
tenant (``limit:tenant:<name>`` / ``limit:key:<name>`` fields of the tenant's hash) and per key
(``limit:<name>`` fields of the key's hash). ``-1`` stored as an override means "no limit".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

NANO = 1_000_000_000  # budgets are counted in integer nano-USD: exact sums, no float drift
LIMIT_NAMES = ("rpm", "tpm", "daily_usd", "monthly_usd")
_KIND = {"rpm": "m", "tpm": "m", "daily_usd": "d", "monthly_usd": "M"}


@dataclass(frozen=True)
class LimitSet:
    """One scope's limits; None is unlimited."""

    rpm: int | None = None
    tpm: int | None = None
    daily_usd: float | None = None
    monthly_usd: float | None = None

    def merged(self, overrides: Mapping[str, str]) -> LimitSet:
        """These limits with string overrides applied (``-1`` lifts a limit; junk is ignored)."""
        values = {name: getattr(self, name) for name in LIMIT_NAMES}
        for name in LIMIT_NAMES:
            raw = overrides.get(name)
            if raw is None or raw == "":
                continue
            try:
                number = float(raw)
            except ValueError:
                continue
            values[name] = None if number < 0 else (int(number) if name in ("rpm", "tpm") else number)
        return LimitSet(**values)

    @property
    def empty(self) -> bool:
        return all(getattr(self, name) is None for name in LIMIT_NAMES)


@dataclass(frozen=True)
class CallerLimits:
    tenant: LimitSet
    key: LimitSet

    @property
    def empty(self) -> bool:
        return self.tenant.empty and self.key.empty


def prefixed(fields: Mapping[str, str], prefix: str) -> dict[str, str]:
    return {k[len(prefix):]: v for k, v in fields.items() if k.startswith(prefix)}


def resolve(defaults_tenant: LimitSet, defaults_key: LimitSet, tenant_fields: Mapping[str, str],
            key_fields: Mapping[str, str]) -> CallerLimits:
    """Effective limits: config defaults < tenant overrides < key overrides."""
    tenant = defaults_tenant.merged(prefixed(tenant_fields, "limit:tenant:"))
    key = defaults_key.merged(prefixed(tenant_fields, "limit:key:")).merged(prefixed(key_fields, "limit:"))
    return CallerLimits(tenant, key)


@dataclass(frozen=True)
class Check:
    """One counter the admission script reads and, if every check passes, increments."""

    key: str
    kind: str  # m (minute), d (day), M (month)
    limit: int
    amount: int
    scope: str  # tenant or key
    name: str  # rpm, tpm, daily_usd, monthly_usd


def counter_key(tenant: str, scope: str, key_id: str, name: str) -> str:
    owner = "t" if scope == "tenant" else f"k:{key_id}"
    return f"tg:rl:{{t:{tenant}}}:{owner}:{name}"


def holds_key(counter: str) -> str:
    """The sorted set of a budget counter's outstanding holds (same hash slot as the counter)."""
    return f"{counter}:h"


def checks_for(limits: CallerLimits, tenant: str, key_id: str, tokens: int, max_cost_usd: float) -> list[Check]:
    """The checks of one call: one request, ``tokens`` estimated tokens, ``max_cost_usd`` reserved."""
    amounts = {"rpm": 1, "tpm": tokens, "daily_usd": usd_to_nano(max_cost_usd), "monthly_usd": usd_to_nano(max_cost_usd)}
    checks = []
    for scope, limit_set in (("tenant", limits.tenant), ("key", limits.key)):
        for name in LIMIT_NAMES:
            value = getattr(limit_set, name)
            if value is None:
                continue
            limit = usd_to_nano(value) if name.endswith("_usd") else int(value)
            checks.append(Check(counter_key(tenant, scope, key_id, name), _KIND[name], limit, amounts[name], scope, name))
    return checks


def admission_key(tenant: str, request_id: str) -> str:
    """What admission reserved for one call (written by the admit script, read by the record script)."""
    return f"tg:adm:{{t:{tenant}}}:{request_id}"


def recorded_key(tenant: str, request_id: str) -> str:
    """Set once a call's record is written: replays and late admissions see it and do nothing."""
    return f"tg:seen:{{t:{tenant}}}:{request_id}"


def usd_to_nano(usd: float) -> int:
    return int(round(usd * NANO))


def format_usd(nano: int) -> str:
    """Dollars as people write them, never rounded away: ``$0.10``, ``$5.00``, ``$0.001``, ``$0.000123``."""
    text = f"{nano / NANO:.9f}".rstrip("0")
    whole, _, cents = text.partition(".")
    return f"${whole}.{cents.ljust(2, '0')}"


def format_reset(seconds: float) -> str:
    """A duration the way OpenAI's ``x-ratelimit-reset-*`` headers write it: ``1s``, ``6m0s``, ``2h3m0s``."""
    whole = max(int(-(-seconds // 1)), 0)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"
