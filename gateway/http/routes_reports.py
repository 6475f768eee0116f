"""Cost reports and the raw ledger over HTTP: ``/v1/reports/costs`` and ``/v1/ledger``.

A tenant key sees its own tenant only; an admin key names a tenant with ``tenant=`` (or, for
reports, leaves it out to sum every tenant). Reports read the per-day aggregates, one hash per
tenant and day, so a month's report costs the same whatever the traffic was.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta

from fastapi import APIRouter, Query, Request
from redis.exceptions import RedisError
from starlette.responses import JSONResponse, Response

from ..errors import APIError
from ..stages.accounting import periods
from ..stages.accounting.metering import load_meter
from ..stages.accounting.reports import (
    ADMIN_GROUPINGS,
    GROUPINGS,
    build_backend_report,
    build_report,
    build_tenant_report,
    label_keys,
    load_days,
    load_tenant_days,
    report_csv,
)
from ..stages.auth import Caller
from ..state import GatewayState
from ..store.redis import is_stream_id
from . import docs

router = APIRouter(tags=["reports"])
MAX_REPORT_DAYS = 400
MAX_LEDGER_PAGE = 1000
FIRST_DAY, LAST_DAY = date(1970, 1, 1), date(9999, 12, 30)
_ERRORS = docs.errors(e400="a parameter is malformed (``param`` names it)", e401="no valid key",
                      e403="another tenant's data", e503="the store is unreachable")


async def _caller(request: Request) -> tuple[GatewayState, Caller]:
    gateway: GatewayState = request.app.state.gateway
    return gateway, await gateway.auth.authenticate(request.headers.get("authorization"))


def _tenant_scope(caller: Caller, requested: str | None) -> str | None:
    """The tenant a caller may read: its own, or (admin) the one asked for; None is all (admin)."""
    if caller.is_admin:
        return requested or None
    if requested and requested != caller.tenant:
        raise APIError(403, "a tenant key can only read its own tenant's data", code="tenant_forbidden", param="tenant")
    return caller.tenant


def _day_bounds(start: str | None, end: str | None, since: str | None) -> tuple[date, date]:
    today = datetime.now(UTC).date()
    try:
        last = _within(periods.parse_day(end, "to"), "to") if end else today
        first = (periods.parse_since(since, last) if since else
                 _within(periods.parse_day(start, "from"), "from") if start else last - timedelta(days=29))
    except OverflowError:
        raise APIError(400, "the period reaches outside the calendar", code="invalid_value", param="since" if since else "from") from None
    except ValueError as err:
        raise APIError(400, str(err), code="invalid_value", param=_param_of(err)) from None
    if first > last:
        raise APIError(400, "from must not be after to", code="invalid_value", param="from")
    if (last - first).days >= MAX_REPORT_DAYS:
        raise APIError(400, f"a report covers at most {MAX_REPORT_DAYS} days", code="invalid_value",
                       param="since" if since else "from")
    return first, last


def _within(day: date, param: str) -> date:
    if not FIRST_DAY <= day <= LAST_DAY:
        raise ValueError(f"{param} must be between {FIRST_DAY} and {LAST_DAY}")
    return day


def _param_of(err: ValueError) -> str | None:
    """The parameter a parse error is about: its message starts with the parameter's name."""
    name = str(err).split(" ", 1)[0]
    return name if name in ("from", "to", "since") else None


@router.get("/v1/reports/costs", responses=_ERRORS)
async def cost_report(
    request: Request,
    group_by: str = Query("day", description="day, model, key, route or tag; admin keys also tenant and backend"),
    fmt: str = Query("json", alias="format", description="json or csv"),
    tenant: str | None = Query(None, max_length=63, description="admin keys: one tenant (default: all of them)"),
    from_: str | None = Query(None, alias="from", max_length=40, description="first day, YYYY-MM-DD or ISO 8601"),
    to: str | None = Query(None, max_length=40, description="last day, YYYY-MM-DD or ISO 8601 (default: today)"),
    since: str | None = Query(None, max_length=8, description="instead of from: 7d, 2w or 48h back from `to`"),
) -> Response:
    """Spend, tokens, requests, the flagship-only counterfactual and savings, grouped by day, model, key
    (with each key's name and tenant), route or key tag. Admin keys also: ``group_by=tenant`` (spend per
    tenant, biggest first) and ``group_by=backend`` (every tenant): each self-hosted deployment's GPU
    bill, the cost attributed to its calls, idle capacity and measured utilization."""
    gateway, caller = await _caller(request)
    if group_by not in (*GROUPINGS, *ADMIN_GROUPINGS):
        raise APIError(400, f"group_by must be one of {', '.join(GROUPINGS + ADMIN_GROUPINGS)}", code="invalid_value",
                       param="group_by")
    if fmt not in ("json", "csv"):
        raise APIError(400, "format must be json or csv", code="invalid_value", param="format")
    if group_by in ADMIN_GROUPINGS:
        if not caller.is_admin:
            raise APIError(403, f"the {group_by} report is for admin keys: it shows every tenant",
                           code="admin_only", param="group_by")
        if tenant and group_by == "backend":
            raise APIError(400, "the backend report covers every tenant: leave tenant out", code="invalid_value",
                           param="tenant")
    tenant = _tenant_scope(caller, tenant)
    first, last = _day_bounds(from_, to, since)
    days = periods.days_between(first, last)
    try:
        tenants = [tenant] if tenant else await gateway.store.tenant_ids()
        if group_by == "tenant":
            names = {str(t["id"]): str(t["name"]) for t in await gateway.store.list_tenants()}
            report = build_tenant_report(await load_tenant_days(gateway.redis, tenants, days), names, days[0], days[-1])
        elif group_by == "backend":
            counts = await load_days(gateway.redis, tenants, days)
            planned = {b.name: b.deployment.utilization for b in gateway.settings.backends if b.deployment}
            report = build_backend_report(counts, await load_meter(gateway.redis, days), planned, days[0], days[-1])
        else:
            report = build_report(await load_days(gateway.redis, tenants, days), group_by, tenant, days[0], days[-1])
            if group_by == "key":
                keys = await gateway.store.list_keys(tenant)
                report = label_keys(report, {k.key_id: (k.name, k.tenant) for k in keys})
    except (RedisError, OSError):
        raise APIError(503, "report store unavailable, try again", code="store_unavailable") from None
    if fmt == "csv":
        filename = f"tollgate-costs-{tenant or 'all'}-{days[0]}-{days[-1]}-{group_by}.csv"
        return Response(report_csv(report), media_type="text/csv",
                        headers={"content-disposition": f'attachment; filename="{filename}"'})
    return JSONResponse(report)


LATEST_EPOCH_S = 253_402_300_799  # 9999-12-31T23:59:59Z


def _epoch_ms(text: str | None, param: str, default: int) -> int:
    if not text:
        return default
    try:
        if text.replace(".", "", 1).isdigit():
            seconds = float(text)
        else:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
            seconds = (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()
    except (ValueError, OverflowError):
        raise APIError(400, f"{param} must be an ISO 8601 time or epoch seconds", code="invalid_value", param=param) from None
    if not math.isfinite(seconds) or not 0 <= seconds <= LATEST_EPOCH_S:
        raise APIError(400, f"{param} must be a time between 1970 and 9999", code="invalid_value", param=param)
    return int(seconds * 1000)


@router.get("/v1/ledger", responses=_ERRORS)
async def ledger_records(
    request: Request,
    tenant: str | None = Query(None, max_length=63, description="admin keys: the tenant to read"),
    limit: int = Query(100, ge=1, le=MAX_LEDGER_PAGE, description="records per page"),
    after: str | None = Query(None, max_length=41, description="the cursor returned as `next`"),
    from_: str | None = Query(None, alias="from", max_length=40, description="ISO 8601 time or epoch seconds"),
    to: str | None = Query(None, max_length=40, description="ISO 8601 time or epoch seconds"),
) -> JSONResponse:
    """Raw call records, oldest first, a page at a time (``next`` is the cursor for ``after``).
    Tenant keys do not see which replica served a call; admin keys see its URL without credentials."""
    gateway, caller = await _caller(request)
    tenant = _tenant_scope(caller, tenant)
    if tenant is None:
        raise APIError(400, "name a tenant with tenant=", code="missing_parameter", param="tenant")
    if after is not None and not is_stream_id(after):
        raise APIError(400, "after must be a cursor returned as next", code="invalid_value", param="after")
    start = _epoch_ms(from_, "from", 0)
    end = _epoch_ms(to, "to", 2**53)
    try:
        records, cursor = await gateway.accounting.ledger.records(tenant, start, end, after, limit)
        oldest, trimmed = await gateway.accounting.ledger.retention(tenant)
    except (RedisError, OSError):
        raise APIError(503, "ledger store unavailable, try again", code="store_unavailable") from None
    if not caller.is_admin:
        for record in records:
            record.pop("replica", None)  # internal addresses are the operator's business
    # A reader resuming from ``after`` can tell whether records it never read were trimmed since.
    return JSONResponse({"object": "list", "data": records, "next": cursor, "oldest": oldest, "trimmed": trimmed})
