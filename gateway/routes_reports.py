"""Cost reports and the raw ledger over HTTP: ``/v1/reports/costs`` and ``/v1/ledger``.

A tenant key sees its own tenant only; an admin key names a tenant with ``tenant=`` (or, for
reports, leaves it out to sum every tenant). Reports read the per-day aggregates, one hash per
tenant and day, so a month's report costs the same whatever the traffic was.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

from fastapi import APIRouter, Request
from redis.exceptions import RedisError
from starlette.responses import JSONResponse, Response

from .accounting import periods
from .accounting.reports import GROUPINGS, build_report, load_days, report_csv
from .auth import Caller
from .errors import APIError
from .state import GatewayState

router = APIRouter(tags=["reports"])
MAX_REPORT_DAYS = 400
MAX_LEDGER_PAGE = 1000


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
    today = datetime.now(timezone.utc).date()
    try:
        last = periods.parse_day(end, "to") if end else today
        if since:
            first = periods.parse_since(since, last)
        else:
            first = periods.parse_day(start, "from") if start else last - timedelta(days=29)
    except ValueError as err:
        raise APIError(400, str(err), code="invalid_value") from None
    if first > last:
        raise APIError(400, "from must not be after to", code="invalid_value", param="from")
    if (last - first).days >= MAX_REPORT_DAYS:
        raise APIError(400, f"a report covers at most {MAX_REPORT_DAYS} days", code="invalid_value", param="from")
    return first, last


@router.get("/v1/reports/costs")
async def cost_report(request: Request) -> Response:
    """Spend, tokens, requests, the flagship-only counterfactual and savings, grouped by day, model, key or route."""
    gateway, caller = await _caller(request)
    query = request.query_params
    group_by = query.get("group_by", "day")
    if group_by not in GROUPINGS:
        raise APIError(400, f"group_by must be one of {', '.join(GROUPINGS)}", code="invalid_value", param="group_by")
    fmt = query.get("format", "json")
    if fmt not in ("json", "csv"):
        raise APIError(400, "format must be json or csv", code="invalid_value", param="format")
    tenant = _tenant_scope(caller, query.get("tenant"))
    first, last = _day_bounds(query.get("from"), query.get("to"), query.get("since"))
    days = periods.days_between(first, last)
    try:
        tenants = [tenant] if tenant else await gateway.store.tenant_ids()
        counts = await load_days(gateway.redis, tenants, days)
    except (RedisError, OSError):
        raise APIError(503, "report store unavailable, try again", code="store_unavailable") from None
    report = build_report(counts, group_by, tenant, days[0], days[-1])
    if fmt == "csv":
        filename = f"tollgate-costs-{tenant or 'all'}-{days[0]}-{days[-1]}-{group_by}.csv"
        return Response(report_csv(report), media_type="text/csv",
                        headers={"content-disposition": f'attachment; filename="{filename}"'})
    return JSONResponse(report)


def _epoch_ms(text: str | None, param: str, default: int) -> int:
    if not text:
        return default
    try:
        if text.replace(".", "", 1).isdigit():
            return int(float(text) * 1000)
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise APIError(400, f"{param} must be an ISO 8601 time or epoch seconds", code="invalid_value", param=param) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return int(parsed.timestamp() * 1000)


@router.get("/v1/ledger")
async def ledger_records(request: Request) -> JSONResponse:
    """Raw call records, oldest first, a page at a time (``next`` is the cursor for ``after``)."""
    gateway, caller = await _caller(request)
    query = request.query_params
    tenant = _tenant_scope(caller, query.get("tenant"))
    if tenant is None:
        raise APIError(400, "name a tenant with tenant=", code="missing_parameter", param="tenant")
    try:
        limit = int(query.get("limit", "100"))
    except ValueError:
        limit = -1
    if not 1 <= limit <= MAX_LEDGER_PAGE:
        raise APIError(400, f"limit must be between 1 and {MAX_LEDGER_PAGE}", code="invalid_value", param="limit")
    after = query.get("after")
    if after is not None and not _is_stream_id(after):
        raise APIError(400, "after must be a cursor returned as next", code="invalid_value", param="after")
    start = _epoch_ms(query.get("from"), "from", 0)
    end = _epoch_ms(query.get("to"), "to", 2**53)
    try:
        records, cursor = await gateway.accounting.ledger.records(tenant, start, end, after, limit)
        oldest, trimmed = await gateway.accounting.ledger.retention(tenant)
    except (RedisError, OSError):
        raise APIError(503, "ledger store unavailable, try again", code="store_unavailable") from None
    # A reader resuming from ``after`` can tell whether records it never read were trimmed since.
    return JSONResponse({"object": "list", "data": records, "next": cursor, "oldest": oldest, "trimmed": trimmed})


def _is_stream_id(text: str) -> bool:
    left, _, right = text.partition("-")
    return left.isdigit() and right.isdigit() and len(text) < 40
