"""Cost reports from the per-day aggregates: totals, and groups by day, model, key or route.

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

GROUPINGS = ("day", "model", "key", "route")
CSV_COLUMNS = (
    "group", "requests", "errors", "rejected", "prompt_tokens", "cached_tokens", "completion_tokens", "cost_usd",
    "flagship_only_usd", "savings_usd", "routing_savings_usd", "cache_savings_usd", "routed", "escalated",
    "escalation_rate", "cache_hits",
)
DayCounts = dict[str, dict[str, int]]  # day label -> aggregate field -> count


async def load_days(redis: Redis, tenants: Iterable[str], days: list[str]) -> DayCounts:
    """Every day's aggregate fields, summed over ``tenants``."""
    tenants = list(tenants)
    async with redis.pipeline(transaction=False) as pipe:
        for tenant in tenants:
            for day in days:
                pipe.hgetall(aggregate_key(tenant, day))
        replies = await pipe.execute()
    out: DayCounts = {day: defaultdict(int) for day in days}
    for index, raw in enumerate(replies):
        day = days[index % len(days)]
        for field, value in raw.items():
            out[day][field.decode()] += int(value)
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
    rows = [{"group": name, **summarize(counts)} for name, counts in groups.items()]
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


def report_csv(report: dict) -> str:
    """One line per group, then a ``total`` line; the same numbers as the JSON report."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in [*report["groups"], {"group": "total", **report["totals"]}]:
        writer.writerow([row[column] for column in CSV_COLUMNS])
    return buffer.getvalue()
