"""One ledger record per call, and the aggregate counters it adds to (pure functions).

Aggregates are kept per tenant and UTC day as a Redis hash whose fields are
``<dimension>|<value>|<metric>``: dimensions ``all``, ``model``, ``key``, ``route`` and ``backend``, so a report
over any period and grouping reads one hash per day and never scans raw records. Only values the
gateway controls (configured model names, key ids, route kinds) become field names: a client can
never grow a tenant's aggregates with made-up model names.

A call that ran two models (an escalated cascade) counts in both model rows, each with its own
tokens and cost; the model escalated past counts the escalation. A failed call counts in the row
of the model it was routed to. Backend rows mirror the model rows: each upstream call counts where
it ran (the cost attributed to a deployment, beside its GPU bill in the backend report).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson

from .limits import usd_to_nano

# metric name in Redis -> what it counts
METRICS = {
    "req": "requests", "err": "errors", "rej": "rejected", "pt": "prompt_tokens", "cached": "cached_tokens",
    "ct": "completion_tokens", "cost": "cost", "flag": "flagship_only", "csave": "cache_savings",
    "routed": "routed", "esc": "escalated", "hits": "cache_hits",
}
USD_METRICS = ("cost", "flag", "csave")
REJECTIONS = ("rate_limit_exceeded", "insufficient_quota")
CUT_STREAMS = ("upstream_timeout", "upstream_disconnected")  # a stream that started, then broke


@dataclass
class Part:
    """One upstream call of a call that made several: its model, tokens and cost."""

    model: str
    backend: str = ""  # where it ran (records written before backends were kept have none)
    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0


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
    routed_model: str = ""  # the configured model the call was routed to first; kept when it failed
    parts: list[Part] = field(default_factory=list)  # each call's own share, when more than one ran
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
    router_version: str = ""  # the deployed router that scored it (router_deployments.version_of)
    shadow_score: float | None = None  # the shadow router's score, when one was deployed
    shadow_model: str = ""  # and the model it would have chosen (never acted on)
    shadow_version: str = ""
    escalated: bool = False
    cascade_confidence: float | None = None
    escalation_reason: str | None = None  # low_confidence, truncated, empty, refusal, cheap_failed/_timeout/_down
    cache: str = "none"  # none or exact
    cache_saved_usd: float = 0.0
    moderation: str = "none"  # the strongest action taken: none, allow, flag, redact or block
    moderation_categories: list[str] = field(default_factory=list)
    latency_ms: float = 0.0
    ttft_ms: float | None = None
    upstream_ms: float | None = None  # whole answers: time spent waiting on the upstream
    tags: list[str] = field(default_factory=list)  # the key's tags when the call was made

    def to_json(self) -> bytes:
        return orjson.dumps(self)  # orjson serializes dataclasses natively (and fast)

    @classmethod
    def from_json(cls, raw: bytes | str) -> CallRecord:
        data = orjson.loads(raw)
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        known["parts"] = [Part(**part) for part in known.get("parts") or ()]
        return cls(**known)

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


def metric_amounts(record: CallRecord) -> dict[str, int]:
    """What one record adds to each metric (costs in nano-USD); zeros are left out."""
    flagship = record.flagship_cost_usd if record.flagship_cost_usd is not None else record.cost_usd + record.cache_saved_usd
    rejected = record.error_code in REJECTIONS
    amounts = {
        "req": 1,
        "err": int((record.status >= 400 and not rejected) or record.error_code in CUT_STREAMS),
        "rej": int(rejected),
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


def _part_amounts(part: Part, routed: bool, escalated_past: bool) -> dict[str, int]:
    amounts = {"req": 1, "pt": part.prompt_tokens, "cached": part.cached_tokens, "ct": part.completion_tokens,
               "cost": usd_to_nano(part.cost_usd), "routed": int(routed), "esc": int(escalated_past)}
    return {name: value for name, value in amounts.items() if value}


def model_rows(record: CallRecord) -> list[tuple[str, dict[str, int] | None]]:
    """(model, metrics) rows; None stands for the record's own metrics. One call: the record's
    metrics, in the row of the model that answered (or, if none did, the one it was routed to).
    Several: each earlier call counts in its own row (with the escalation past it), and the last
    call's row takes the rest of the record."""
    model = record.model or record.routed_model or "-"
    if len(record.parts) < 2:
        if not record.escalated:
            return [(model, None)]  # the common case: nothing to send but the model's name
        return [(model, {k: v for k, v in metric_amounts(record).items() if k != "esc"})]
    routed = record.route in ("router", "cascade")
    rows: list[tuple[str, dict[str, int] | None]] = [
        (part.model, _part_amounts(part, routed, record.escalated)) for part in record.parts[:-1]]
    last = record.parts[-1]
    final = {**metric_amounts(record), "pt": last.prompt_tokens, "cached": last.cached_tokens,
             "ct": last.completion_tokens, "cost": usd_to_nano(last.cost_usd), "esc": 0}
    rows.append((model, {name: value for name, value in final.items() if value}))
    return rows


def dimension_rows(record: CallRecord) -> list[tuple[str, dict[str, int] | None]]:
    """The model rows, the same rows by the backend each call ran on (none for calls that reached
    no backend: cache hits, rejections), and a row per tag of the caller's key (the whole record)."""
    rows = model_rows(record)
    backends = [part.backend for part in record.parts] if len(record.parts) >= 2 else [record.backend]
    return [*((f"model|{model}", counted) for model, counted in rows),
            *((f"backend|{backend}", counted) for backend, (_, counted) in zip(backends, rows, strict=True) if backend),
            *((f"tag|{tag}", None) for tag in dict.fromkeys(record.tags))]


def aggregate_increments(record: CallRecord) -> list[tuple[str, int]]:
    """(field, amount) pairs the record adds to its day hash (what the record script does, spelled out)."""
    amounts = metric_amounts(record)
    rows = [("all|*", amounts), *((row, amounts if a is None else a) for row, a in dimension_rows(record)),
            (f"key|{record.key_id or '-'}", amounts), (f"route|{record.route}", amounts)]
    return [(f"{row}|{metric}", amount) for row, counted in rows for metric, amount in counted.items()]
