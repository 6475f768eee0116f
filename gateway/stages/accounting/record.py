"""One ledger record per call, and the aggregate counters it adds to (pure functions).

Aggregates are kept per tenant and UTC day as a Redis hash whose fields are
``<dimension>|<value>|<metric>``: dimensions ``all``, ``model``, ``key`` and ``route``, so a report
over any period and grouping reads one hash per day and never scans raw records. Only values the
gateway controls (configured model names, key ids, route kinds) become field names: a client can
never grow a tenant's aggregates with made-up model names.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson

from .limits import usd_to_nano

DIMENSIONS = ("all", "model", "key", "route")
# metric name in Redis -> what it counts
METRICS = {
    "req": "requests", "err": "errors", "rej": "rejected", "pt": "prompt_tokens", "cached": "cached_tokens",
    "ct": "completion_tokens", "cost": "cost", "flag": "flagship_only", "csave": "cache_savings",
    "routed": "routed", "esc": "escalated", "hits": "cache_hits",
}
USD_METRICS = ("cost", "flag", "csave")


@dataclass
class CallRecord:
    request_id: str
    ts: float
    tenant: str
    key_id: str
    endpoint: str
    requested_model: str
    model: str = ""  # the public model that answered; "" when none did
    models: list[str] = field(default_factory=list)  # every model that ran (a cascade: two)
    backend: str = ""
    replica: str = ""
    route: str = "direct"  # direct, router or cascade
    stream: bool = False
    status: int = 200
    error_code: str | None = None
    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0
    usage_estimated: bool = False
    cost_usd: float = 0.0
    flagship_cost_usd: float | None = None
    cost_source: str = ""
    router_score: float | None = None
    router_threshold: float | None = None
    escalated: bool = False
    cascade_confidence: float | None = None
    cache: str = "none"  # none or exact
    cache_saved_usd: float = 0.0
    moderation: str = "none"  # the strongest action taken: none, allow, flag, redact or block
    moderation_categories: list[str] = field(default_factory=list)
    latency_ms: float = 0.0
    ttft_ms: float | None = None
    upstream_ms: float | None = None  # whole answers: time spent waiting on the upstream

    def to_json(self) -> bytes:
        return orjson.dumps(self)  # orjson serializes dataclasses natively (and fast)

    @classmethod
    def from_json(cls, raw: bytes | str) -> CallRecord:
        data = orjson.loads(raw)
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


def metric_amounts(record: CallRecord) -> dict[str, int]:
    """What one record adds to each metric (costs in nano-USD); zeros are left out."""
    flagship = record.flagship_cost_usd if record.flagship_cost_usd is not None else record.cost_usd + record.cache_saved_usd
    amounts = {
        "req": 1,
        "err": int(record.status >= 400 and record.error_code not in ("rate_limit_exceeded", "insufficient_quota")),
        "rej": int(record.error_code in ("rate_limit_exceeded", "insufficient_quota")),
        "pt": record.prompt_tokens,
        "cached": record.cached_tokens,
        "ct": record.completion_tokens,
        "cost": usd_to_nano(record.cost_usd),
        "flag": usd_to_nano(flagship),
        "csave": usd_to_nano(record.cache_saved_usd),
        "routed": int(record.route in ("router", "cascade")),
        "esc": int(record.escalated),
        "hits": int(record.cache != "none"),
    }
    return {name: value for name, value in amounts.items() if value}


def dimension_values(record: CallRecord) -> tuple[str, str, str]:
    """The record's model, key and route, as they name aggregate fields (``all`` is always ``*``)."""
    return record.model or "-", record.key_id or "-", record.route


def aggregate_increments(record: CallRecord) -> list[tuple[str, int]]:
    """(field, amount) pairs for the record's day hash; the record script builds the same in Lua."""
    values = dict(zip(DIMENSIONS, ("*", *dimension_values(record)), strict=True))
    amounts = metric_amounts(record)
    return [(f"{dim}|{values[dim]}|{metric}", amount) for dim in DIMENSIONS for metric, amount in amounts.items()]
