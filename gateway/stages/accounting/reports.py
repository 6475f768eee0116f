"""Cost reports from the per-day aggregates: totals, and groups by day, model, key, route or tag; and
(admins) spend by tenant, and the backend report: each self-hosted deployment's GPU bill beside
what its calls absorbed.

``build_report`` is pure (day hashes in, report out) so that its arithmetic is tested without
Redis; ``load_days`` is the one read: a pipeline of one HGETALL per tenant and day.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Iterable

from redis.asyncio import Redis

from .ledger import aggregate_key
from .record import METRICS, USD_METRICS

GROUPINGS = ("day", "model", "key", "route", "tag")
ADMIN_GROUPINGS = ("tenant", "backend")  # across tenants: admin keys only
BACKEND_COLUMNS = (
    "group", "replica_hours", "bill_usd", "attributed_usd", "idle_usd", "idle_unbusy_usd", "idle_busy_usd",
    "utilization", "busy_share", "planned_utilization", "requests", "prompt_tokens", "completion_tokens",
)
CSV_COLUMNS = (
    "group", "requests", "errors", "rejected", "prompt_tokens", "cached_tokens", "completion_tokens", "cost_usd",
    "flagship_only_usd", "savings_usd", "routing_savings_usd", "cache_savings_usd", "routed", "escalated",
    "escalation_rate", "cache_hits",
)
REFUSED = "(refused before routing)"  # the model row of calls refused before a model was chosen
DayCounts = dict[str, dict[str, int]]  # day label -> aggregate field -> count


async def load_days(redis: Redis, tenants: Iterable[str], days: list[str]) -> DayCounts:
    """Every day's aggregate fields, summed over ``tenants``."""
    out: DayCounts = {day: defaultdict(int) for day in days}
    for per_day in (await load_tenant_days(redis, tenants, days)).values():
        for day, fields in per_day.items():
            for field, value in fields.items():
                out[day][field] += value
    return out


async def load_tenant_days(redis: Redis, tenants: Iterable[str], days: list[str]) -> dict[str, DayCounts]:
    """Every day's aggregate fields, per tenant: one pipeline of one HGETALL per tenant and day."""
    tenants = list(tenants)
    async with redis.pipeline(transaction=False) as pipe:
        for tenant in tenants:
            for day in days:
                pipe.hgetall(aggregate_key(tenant, day))
        replies = await pipe.execute()
    out: dict[str, DayCounts] = {tenant: {} for tenant in tenants}
    for index, raw in enumerate(replies):
        tenant, day = tenants[index // len(days)], days[index % len(days)]
        out[tenant][day] = {field.decode(): int(value) for field, value in raw.items()}
    return out


def summarize(counts: dict[str, int]) -> dict[str, float | int]:
    """Metric counts (``req``, ``cost``, ...) as a report row; money in USD."""
    values: dict[str, float] = {name: counts.get(metric, 0) for metric, name in METRICS.items()}
    for metric in USD_METRICS:
        values[METRICS[metric]] = counts.get(metric, 0) / 1e9
    savings = values["flagship_only"] - values["cost"]
    return {
        "requests": values["requests"],
        "errors": values["errors"],
        "rejected": values["rejected"],
        "prompt_tokens": values["prompt_tokens"],
        "cached_tokens": values["cached_tokens"],
        "completion_tokens": values["completion_tokens"],
        "cost_usd": round(values["cost"], 9),
        "flagship_only_usd": round(values["flagship_only"], 9),
        "savings_usd": round(savings, 9),
        "routing_savings_usd": round(savings - values["cache_savings"], 9),
        "cache_savings_usd": round(values["cache_savings"], 9),
        "routed": values["routed"],
        "escalated": values["escalated"],
        "escalation_rate": round(values["escalated"] / values["routed"], 6) if values["routed"] else 0.0,
        "cache_hits": values["cache_hits"],
    }


def _metrics_of(fields: dict[str, int], dimension: str) -> dict[str, dict[str, int]]:
    """``{value: {metric: count}}`` for one dimension of one day."""
    out: dict[str, dict[str, int]] = defaultdict(dict)
    prefix = dimension + "|"
    for name, count in fields.items():
        if name.startswith(prefix):
            value, _, metric = name[len(prefix):].rpartition("|")
            out[value][metric] = count
    return out


def build_report(days: DayCounts, group_by: str, tenant: str | None, first: str, last: str) -> dict:
    totals: dict[str, int] = defaultdict(int)
    groups: dict[str, dict[str, int]] = {}
    for day, fields in days.items():
        for metric, count in _metrics_of(fields, "all").get("*", {}).items():
            totals[metric] += count
        if group_by == "day":
            groups[day] = _metrics_of(fields, "all").get("*", {})
            continue
        for value, counts in _metrics_of(fields, group_by).items():
            bucket = groups.setdefault(value, defaultdict(int))
            for metric, count in counts.items():
                bucket[metric] += count
    rows = [{"group": REFUSED if group_by == "model" and name == "-" else name, **summarize(counts)}
            for name, counts in groups.items()]
    if group_by != "day":
        rows.sort(key=lambda row: (-float(row["cost_usd"]), -float(row["requests"]), str(row["group"])))
    return {
        "object": "cost_report",
        "tenant": tenant,
        "from": first,
        "to": last,
        "group_by": group_by,
        "currency": "USD",
        "totals": summarize(totals),
        "groups": rows,
    }


def build_tenant_report(per_tenant: dict[str, DayCounts], names: dict[str, str], first: str, last: str) -> dict:
    """Spend per tenant (admins), biggest first; totals over every tenant."""
    totals: dict[str, int] = defaultdict(int)
    rows = []
    for tenant, days in per_tenant.items():
        counts: dict[str, int] = defaultdict(int)
        for fields in days.values():
            for metric, count in _metrics_of(fields, "all").get("*", {}).items():
                counts[metric] += count
                totals[metric] += count
        if counts:
            rows.append({"group": tenant, "name": names.get(tenant, tenant), **summarize(counts)})
    rows.sort(key=lambda row: (-float(row["cost_usd"]), -float(row["requests"]), str(row["group"])))
    return {"object": "cost_report", "tenant": None, "from": first, "to": last, "group_by": "tenant",
            "currency": "USD", "totals": summarize(totals), "groups": rows}


def label_keys(report: dict, keys: dict[str, tuple[str, str]]) -> dict:
    """Key rows get the key's name and tenant beside its id (``keys``: id -> (name, tenant))."""
    for row in report["groups"]:
        name, tenant = keys.get(str(row["group"]), ("", ""))
        row["name"], row["tenant"] = name, tenant or None
    return report


def _ratio(part: float, whole: float) -> float | None:
    return round(part / whole, 6) if whole > 0 else None


def backend_row(counts: dict[str, int], meter: dict[str, int], planned: float | None) -> dict[str, float | int | None]:
    """One deployment over a period: its bill (None for API backends, which bill per token), the
    cost attributed to its calls, and the rest: idle capacity, split into time nothing ran and busy
    time no price covered (the pricing model's error, network time counted as busy)."""
    attributed = counts.get("cost", 0) / 1e9
    seen_s, busy_s = meter.get("seen", 0) / 1000, meter.get("busy", 0) / 1000
    bill = meter["bill"] / 1e9 if "bill" in meter else None
    idle = unbusy = None
    if bill is not None:
        idle = bill - attributed
        unbusy = bill * (1 - busy_s / seen_s) if seen_s else bill
    return {
        "replica_hours": round(seen_s / 3600, 6),
        "bill_usd": None if bill is None else round(bill, 9),
        "attributed_usd": round(attributed, 9),
        "idle_usd": None if idle is None else round(idle, 9),
        "idle_unbusy_usd": None if unbusy is None else round(unbusy, 9),
        "idle_busy_usd": None if idle is None or unbusy is None else round(idle - unbusy, 9),
        "utilization": None if bill is None else _ratio(attributed, bill),
        "busy_share": _ratio(busy_s, seen_s),
        "planned_utilization": planned,
        "requests": counts.get("req", 0),
        "prompt_tokens": counts.get("pt", 0),
        "completion_tokens": counts.get("ct", 0),
    }


def build_backend_report(days: DayCounts, meter: dict[str, dict[str, dict[str, int]]], planned: dict[str, float],
                         first: str, last: str) -> dict:
    """Every backend that was metered or served a call in the period, biggest bill first."""
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    metered: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for fields in days.values():
        for backend, values in _metrics_of(fields, "backend").items():
            for metric, count in values.items():
                counts[backend][metric] += count
    for per_backend in meter.values():
        for backend, values in per_backend.items():
            for metric, count in values.items():
                metered[backend][metric] += count
    rows = [{"group": name, **backend_row(counts[name], metered[name], planned.get(name))}
            for name in sorted(set(counts) | set(metered))]
    rows.sort(key=lambda row: (-float(row["bill_usd"] or 0.0), -float(row["attributed_usd"] or 0.0), str(row["group"])))
    total_counts: dict[str, int] = defaultdict(int)
    total_meter: dict[str, int] = defaultdict(int)
    for name in metered:  # totals over the metered (self-hosted) deployments: bill and its parts add up
        for metric, count in counts[name].items():
            total_counts[metric] += count
        for metric, count in metered[name].items():
            total_meter[metric] += count
    return {"object": "cost_report", "tenant": None, "from": first, "to": last, "group_by": "backend",
            "currency": "USD", "totals": backend_row(total_counts, total_meter, None), "groups": rows}


def report_csv(report: dict) -> str:
    """One line per group, then a ``total`` line; the same numbers as the JSON report."""
    columns: tuple[str, ...] = BACKEND_COLUMNS if report["group_by"] == "backend" else CSV_COLUMNS
    if report["group_by"] == "key":
        columns = ("group", "name", "tenant", *CSV_COLUMNS[1:])
    elif report["group_by"] == "tenant":
        columns = ("group", "name", *CSV_COLUMNS[1:])
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in [*report["groups"], {"group": "total", **report["totals"]}]:
        writer.writerow(["" if row.get(column) is None else row[column] for column in columns])
    return buffer.getvalue()
