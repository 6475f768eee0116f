"""Pure accounting maths: UTC periods, limit resolution, headers, aggregates and reports."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from gateway.stages.accounting import periods
from gateway.stages.accounting.admission import Ticket
from gateway.stages.accounting.limits import CallerLimits, LimitSet, checks_for, format_reset, resolve
from gateway.stages.accounting.record import CallRecord, aggregate_increments
from gateway.stages.accounting.reports import build_report, build_tenant_report, label_keys, report_csv


def _ts(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def test_month_index_matches_the_calendar_for_every_day_over_four_centuries_of_edges() -> None:
    for day in [*range(-800, 800), *range(10_950, 11_400), *range(47_400, 47_600), 2_932_896]:
        civil = datetime.fromtimestamp(day * 86_400, UTC)
        assert periods.month_index(day) == civil.year * 12 + civil.month - 1, civil


def test_resets_end_at_the_next_utc_minute_day_and_month() -> None:
    now = int(_ts("2026-02-28T23:59:30"))
    assert periods.seconds_to_reset("m", now) == 30
    assert periods.seconds_to_reset("d", now) == 30
    assert periods.seconds_to_reset("M", now) == 30
    assert periods.seconds_to_reset("M", int(_ts("2026-12-31T00:00:00"))) == 86_400


def test_report_periods_parse_dates_timestamps_and_since() -> None:
    assert periods.parse_day("2026-11-21", "from") == date(2026, 11, 21)
    assert periods.parse_day("2026-11-21T23:30:00-02:00", "from") == date(2026, 11, 22)
    assert periods.parse_since("7d", date(2026, 11, 21)) == date(2026, 11, 15)
    assert periods.parse_since("48h", date(2026, 11, 21)) == date(2026, 11, 20)
    assert periods.days_between(date(2026, 2, 27), date(2026, 3, 1)) == ["2026-02-27", "2026-02-28", "2026-03-01"]
    with pytest.raises(ValueError):
        periods.parse_since("yesterday", date(2026, 11, 21))
    with pytest.raises(ValueError):
        periods.parse_day("21/11/2026", "from")


def test_limits_inherit_defaults_then_tenant_then_key_overrides() -> None:
    limits = resolve(
        LimitSet(rpm=100, daily_usd=5.0), LimitSet(rpm=10),
        {"limit:tenant:rpm": "200", "limit:key:tpm": "1000", "limit:tenant:daily_usd": "-1"},
        {"limit:rpm": "3", "limit:tpm": "not a number"},
    )
    assert limits.tenant == LimitSet(rpm=200)
    assert limits.key == LimitSet(rpm=3, tpm=1000)


def test_checks_count_one_request_the_estimated_tokens_and_hold_the_maximum_cost() -> None:
    limits = CallerLimits(LimitSet(rpm=10, monthly_usd=2.5), LimitSet(tpm=500))
    checks = checks_for(limits, "acme", "k1", tokens=120, max_cost_usd=0.01)
    assert [(c.scope, c.name, c.kind, c.limit, c.amount) for c in checks] == [
        ("tenant", "rpm", "m", 10, 1), ("tenant", "monthly_usd", "M", 2_500_000_000, 10_000_000),
        ("key", "tpm", "m", 500, 120),
    ]
    assert all("{t:acme}" in c.key for c in checks)  # one hash slot per tenant (Redis Cluster)


def test_openai_style_headers_report_the_tightest_limit() -> None:
    limits = CallerLimits(LimitSet(rpm=10, tpm=1000), LimitSet(rpm=5))
    checks = checks_for(limits, "acme", "k1", tokens=100, max_cost_usd=0)
    ticket = Ticket(checks, [7, 300, 4], now_s=int(_ts("2026-11-21T10:00:15")))
    headers = ticket.headers()
    assert headers["x-ratelimit-limit-requests"] == "5" and headers["x-ratelimit-remaining-requests"] == "1"
    assert headers["x-ratelimit-limit-tokens"] == "1000" and headers["x-ratelimit-remaining-tokens"] == "700"
    assert headers["x-ratelimit-reset-requests"] == "45s"
    assert format_reset(3723) == "1h2m3s" and format_reset(0.2) == "1s" and format_reset(360) == "6m0s"


def test_settlement_says_what_the_call_used_of_each_counter() -> None:
    """What was reserved is in Redis (the admission marker): the record script settles against it."""
    limits = CallerLimits(LimitSet(rpm=10, tpm=1000, daily_usd=1.0), LimitSet())
    checks = checks_for(limits, "acme", "k1", tokens=300, max_cost_usd=0.5)
    settled = Ticket(checks, [1, 300, 0], now_s=1).settlements(tokens=120, cost_usd=0.002)
    assert settled == [(checks[0].key, "m", 1), (checks[1].key, "m", 120), (checks[2].key, "d", 2_000_000)]
    assert Ticket(checks).settlements(tokens=120, cost_usd=0.002) == settled  # reserved or not: the same


def test_budgets_and_prices_are_written_without_rounding_them_away() -> None:
    from gateway.stages.accounting.limits import format_usd

    assert [format_usd(n) for n in (100_000_000, 1_000_000, 123_000, 5_000_000_000, 0, 15_500_000)] == [
        "$0.10", "$0.001", "$0.000123", "$5.00", "$0.00", "$0.0155"]


def _record(ts: str, **fields) -> CallRecord:
    base = dict(request_id="r", ts=_ts(ts), tenant="acme", key_id="k1", endpoint="/chat/completions",
                requested_model="auto", model="cheap", route="router", prompt_tokens=10, completion_tokens=5,
                cost_usd=0.001, flagship_cost_usd=0.004)
    return CallRecord(**{**base, **fields})


def _day_counts(records: list[CallRecord]) -> dict[str, dict[str, int]]:
    days: dict[str, dict[str, int]] = {}
    for record in records:
        bucket = days.setdefault(periods.day_label(record.ts), {})
        for field, amount in aggregate_increments(record):
            bucket[field] = bucket.get(field, 0) + amount
    return days


def test_reports_split_days_at_utc_midnight_and_compute_savings() -> None:
    records = [
        _record("2026-11-20T23:59:59.999"),
        _record("2026-11-21T00:00:00", model="flagship", cost_usd=0.004, escalated=True),
        _record("2026-11-21T12:00:00", cache="exact", cost_usd=0.0, flagship_cost_usd=0.004, cache_saved_usd=0.001),
        _record("2026-11-21T13:00:00", model="", route="direct", status=429, error_code="rate_limit_exceeded",
                prompt_tokens=0, completion_tokens=0, cost_usd=0.0, flagship_cost_usd=None),
    ]
    days = {"2026-11-20": {}, "2026-11-21": {}, **_day_counts(records)}
    by_day = build_report(days, "day", "acme", "2026-11-20", "2026-11-21")
    assert [(g["group"], g["requests"]) for g in by_day["groups"]] == [("2026-11-20", 1), ("2026-11-21", 3)]
    totals = by_day["totals"]
    assert totals["cost_usd"] == pytest.approx(0.005) and totals["flagship_only_usd"] == pytest.approx(0.012)
    assert totals["savings_usd"] == pytest.approx(0.007) and totals["cache_savings_usd"] == pytest.approx(0.001)
    assert totals["routing_savings_usd"] == pytest.approx(0.006)
    assert totals["escalation_rate"] == pytest.approx(1 / 3) and totals["rejected"] == 1 and totals["errors"] == 0
    by_model = build_report(days, "model", "acme", "2026-11-20", "2026-11-21")
    assert [g["group"] for g in by_model["groups"]] == ["flagship", "cheap", "(refused before routing)"]
    assert sum(g["requests"] for g in by_model["groups"]) == totals["requests"] == 4
    lines = report_csv(by_model).splitlines()
    assert lines[0].startswith("group,requests") and lines[-1].startswith("total,4,")


def test_spend_by_tag_by_tenant_and_keys_named() -> None:
    """A call counts once in the row of each tag its key had (tags overlap, so tag rows need not add
    up to the total); tenants are ranked by spend; key rows carry the key's name and tenant."""
    acme = [_record("2026-11-21T10:00:00", tags=["team:search", "prod"], cost_usd=0.002),
            _record("2026-11-21T11:00:00", tags=["prod"], cost_usd=0.001), _record("2026-11-21T12:00:00", cost_usd=0.004)]
    globex = [_record("2026-11-21T10:00:00", tenant="globex", key_id="k9", cost_usd=0.01)]
    days = _day_counts(acme)
    by_tag = build_report(days, "tag", "acme", "2026-11-21", "2026-11-21")
    assert [(g["group"], g["requests"], g["cost_usd"]) for g in by_tag["groups"]] == [
        ("prod", 2, pytest.approx(0.003)), ("team:search", 1, pytest.approx(0.002))]
    assert by_tag["totals"]["cost_usd"] == pytest.approx(0.007)  # the untagged call is in the total only
    by_tenant = build_tenant_report({"acme": days, "globex": _day_counts(globex), "idle": {}},
                                    {"acme": "Acme Corp"}, "2026-11-21", "2026-11-21")
    assert [(g["group"], g["name"], g["cost_usd"]) for g in by_tenant["groups"]] == [
        ("globex", "globex", pytest.approx(0.01)), ("acme", "Acme Corp", pytest.approx(0.007))]
    assert by_tenant["totals"]["cost_usd"] == pytest.approx(0.017) and by_tenant["totals"]["requests"] == 4
    assert report_csv(by_tenant).splitlines()[0].startswith("group,name,requests")
    by_key = label_keys(build_report(days, "key", "acme", "2026-11-21", "2026-11-21"), {"k1": ("ci bot", "acme")})
    assert (by_key["groups"][0]["group"], by_key["groups"][0]["name"], by_key["groups"][0]["tenant"]) == ("k1", "ci bot", "acme")
