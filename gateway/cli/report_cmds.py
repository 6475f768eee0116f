"""``tollgate report``, ``tollgate limits …`` and ``tollgate ledger export``: accounting from a shell.

Like the other admin commands they talk HTTP to any replica. ``report`` takes a tenant key (its own
tenant only) or an admin key (any tenant with ``--tenant``, or all tenants without it).
"""

from __future__ import annotations

import json

import typer

from ..stages.accounting.reports import report_csv
from .options import ADMIN_KEY, URL, call
from .output import print_rows

limits_app = typer.Typer(no_args_is_help=True, help="Show and set rate limits and budgets.")
ledger_app = typer.Typer(no_args_is_help=True, help="Read raw ledger records.")
_KEY = typer.Option(..., "--key", envvar=["TOLLGATE_API_KEY", "TOLLGATE_ADMIN_KEY"],
                    help="A tenant key (its own tenant) or an admin key.")
_TABLE_COLUMNS = ["group", "requests", "errors", "rejected", "prompt_tokens", "completion_tokens", "cost_usd",
                  "flagship_only_usd", "savings_usd", "cache_savings_usd", "escalation_rate"]

_BACKEND_COLUMNS = ["group", "replica_hours", "bill_usd", "attributed_usd", "idle_usd", "utilization", "busy_share",
                    "planned_utilization", "requests"]


def report(
    tenant: str | None = typer.Option(None, help="Tenant (admin keys; default: all tenants)."),
    since: str | None = typer.Option(None, help="Period back from --to: 7d, 2w, 48h (default 30 days)."),
    start: str | None = typer.Option(None, "--from", help="First UTC day, YYYY-MM-DD."),
    end: str | None = typer.Option(None, "--to", help="Last UTC day, YYYY-MM-DD (default today)."),
    by: str = typer.Option("day", "--by", help="Group by day, model, key, route or tag (keys' tags); admin keys "
                           "also tenant (spend per tenant) and backend (GPU bill, attributed cost, idle capacity "
                           "and utilization per deployment)."),
    fmt: str = typer.Option("table", "--format", help="table, csv or json."),
    url: str = URL,
    key: str = _KEY,
) -> None:
    """What was spent, on which model, and what routing and caching saved versus flagship-only."""
    if fmt not in ("table", "csv", "json"):
        typer.echo("error: --format must be table, csv or json", err=True)
        raise typer.Exit(2)
    params = {k: v for k, v in {"tenant": tenant, "since": since, "from": start, "to": end, "group_by": by}.items() if v}
    body = call("GET", url, key, "/v1/reports/costs", params=params)
    if fmt == "json":
        typer.echo(json.dumps(body, indent=2))
    elif fmt == "csv":
        typer.echo(report_csv(body), nl=False)
    else:
        typer.echo(f"{body['tenant'] or 'all tenants'}: {body['from']} to {body['to']} (UTC), by {body['group_by']}")
        columns = {"backend": _BACKEND_COLUMNS, "key": ["group", "name", "tenant", *_TABLE_COLUMNS[1:]],
                   "tenant": ["group", "name", *_TABLE_COLUMNS[1:]]}.get(body["group_by"], _TABLE_COLUMNS)
        print_rows([*body["groups"], {"group": "total", **body["totals"]}], columns)


def _limit_payload(rpm: int | None, tpm: int | None, daily: float | None, monthly: float | None) -> dict:
    values = {"rpm": rpm, "tpm": tpm, "daily_usd": daily, "monthly_usd": monthly}
    return {name: value for name, value in values.items() if value is not None}


_RPM = typer.Option(None, "--rpm", help="Requests per minute (-1: no limit).")
_TPM = typer.Option(None, "--tpm", help="Tokens per minute (-1: no limit).")
_DAILY = typer.Option(None, "--daily-usd", help="USD per UTC day (-1: no limit).")
_MONTHLY = typer.Option(None, "--monthly-usd", help="USD per UTC month (-1: no limit).")


@limits_app.command("show")
def limits_show(tenant: str, url: str = URL, admin_key: str = ADMIN_KEY) -> None:
    """A tenant's overrides and effective limits."""
    typer.echo(json.dumps(call("GET", url, admin_key, f"/admin/tenants/{tenant}/limits"), indent=2))


@limits_app.command("set")
def limits_set(
    tenant: str | None = typer.Option(None, help="Set the tenant's limits (with --per-key: its keys' defaults)."),
    key_id: str | None = typer.Option(None, "--key-id", help="Set one key's limits instead."),
    per_key: bool = typer.Option(False, "--per-key", help="With --tenant: the default for each of its keys."),
    rpm: int | None = _RPM, tpm: int | None = _TPM, daily: float | None = _DAILY,
    monthly: float | None = _MONTHLY, url: str = URL, admin_key: str = ADMIN_KEY,
) -> None:
    """Change limits; every replica applies them within a second."""
    payload = _limit_payload(rpm, tpm, daily, monthly)
    if bool(tenant) == bool(key_id):
        typer.echo("error: give exactly one of --tenant or --key-id", err=True)
        raise typer.Exit(2)
    if key_id:
        result = call("PUT", url, admin_key, f"/admin/keys/{key_id}/limits", json=payload)
    else:
        scope = "key" if per_key else "tenant"
        result = call("PUT", url, admin_key, f"/admin/tenants/{tenant}/limits", json={scope: payload})
    typer.echo(json.dumps(result, indent=2))


@ledger_app.command("export")
def ledger_export(
    tenant: str | None = typer.Option(None, help="Tenant (required with an admin key)."),
    start: str | None = typer.Option(None, "--from", help="ISO 8601 time or epoch seconds."),
    end: str | None = typer.Option(None, "--to", help="ISO 8601 time or epoch seconds."),
    url: str = URL,
    key: str = _KEY,
) -> None:
    """Every record of the period as JSON Lines, oldest first (pages through the API)."""
    params = {k: v for k, v in {"tenant": tenant, "from": start, "to": end, "limit": "1000"}.items() if v}
    while True:
        page = call("GET", url, key, "/v1/ledger", params=params)
        for record in page["data"]:
            typer.echo(json.dumps(record))
        if not page["next"]:
            break
        params["after"] = page["next"]
