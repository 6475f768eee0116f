"""`tollgate router deploy / compare / promote / rollback / discard / deployments`: putting a newly
trained router in front of live traffic safely (the admin API's /admin/router/* rollout routes)."""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

import typer

from .options import ADMIN_KEY, JSON, URL, call
from .output import print_rows
from .router_cmds import _fail, router_app

_TENANT = typer.Option(None, help="A tenant's own router (the global router stays its fallback).")


def _scope(tenant: str | None) -> str:
    return f"tenant {tenant}" if tenant else "global"


def _print_state(state: dict[str, Any], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(state, indent=2))
        return
    rows = []

    def add(scope: str, role: str, shown: dict[str, Any] | None, since: float | None = None) -> None:
        if shown is None:
            return
        held_out = shown.get("cross_validated") or {}
        rows.append({"scope": scope, "role": role, "version": shown["version"], "trained_at": shown.get("trained_at"),
                     "examples": shown.get("examples"), "cv_apgr": held_out.get("apgr"),
                     "since": datetime.datetime.fromtimestamp(since, datetime.UTC).strftime("%Y-%m-%d %H:%M") if since else None})

    glob = state["global"]
    add("global", "serving" if glob["serving"] != state["configured"] else "serving (configured)", glob["serving"])
    add("global", "shadow", glob["shadow"], glob["shadow_since"])
    for tenant, scope in state["tenants"].items():
        add(f"tenant {tenant}", "serving", scope["serving"])
        add(f"tenant {tenant}", "shadow", scope["shadow"], scope["shadow_since"])
    print_rows(rows, ["scope", "role", "version", "trained_at", "examples", "cv_apgr", "since"])
    earlier = [v or "(configured)" for v in glob["history"]]
    if earlier:
        typer.echo(f"rollback goes back to: {earlier[0]} (then {', '.join(earlier[1:]) or 'nothing'})")


@router_app.command("deploy")
def deploy_cmd(
    artifact: Path = typer.Argument(..., help="A router written by `tollgate router train`."),
    shadow: bool = typer.Option(False, "--shadow", help="Score every routed call beside the serving router, acting on nothing."),
    tenant: str | None = _TENANT,
    url: str = URL,
    admin_key: str = ADMIN_KEY,
    as_json: bool = JSON,
) -> None:
    """Deploy a router live on every replica (within a second); --shadow to compare it first."""
    try:
        document = json.loads(artifact.read_text())
    except (OSError, ValueError) as err:
        raise _fail(f"cannot read {artifact}: {err}") from None
    state = call("POST", url, admin_key, "/admin/router/deploy",
                 json={"artifact": document, "shadow": shadow, "tenant": tenant})
    if not as_json:
        typer.echo(f"{artifact} {'shadows' if shadow else 'serves'} ({_scope(tenant)})")
    _print_state(state, as_json)


def _simple(operation: str, tenant: str | None, url: str, admin_key: str, as_json: bool, done: str) -> None:
    state = call("POST", url, admin_key, f"/admin/router/{operation}", json={"tenant": tenant})
    if not as_json:
        typer.echo(f"{done} ({_scope(tenant)})")
    _print_state(state, as_json)


@router_app.command("promote")
def promote_cmd(tenant: str | None = _TENANT, url: str = URL, admin_key: str = ADMIN_KEY, as_json: bool = JSON) -> None:
    """The shadow router serves from now on, on every replica within a second."""
    _simple("promote", tenant, url, admin_key, as_json, "promoted the shadow")


@router_app.command("rollback")
def rollback_cmd(tenant: str | None = _TENANT, url: str = URL, admin_key: str = ADMIN_KEY, as_json: bool = JSON) -> None:
    """Back to the router that served before, on every replica within a second."""
    _simple("rollback", tenant, url, admin_key, as_json, "rolled back")


@router_app.command("discard")
def discard_cmd(tenant: str | None = _TENANT, url: str = URL, admin_key: str = ADMIN_KEY, as_json: bool = JSON) -> None:
    """Stop shadowing: drop the candidate router (the serving one is untouched)."""
    _simple("discard", tenant, url, admin_key, as_json, "discarded the shadow")


@router_app.command("deployments")
def deployments_cmd(url: str = URL, admin_key: str = ADMIN_KEY, as_json: bool = JSON) -> None:
    """Which router serves (globally, per tenant), which shadows it, and what rollback returns to."""
    _print_state(call("GET", url, admin_key, "/admin/router/deployments"), as_json)


@router_app.command("compare")
def compare_cmd(
    tenant: str | None = _TENANT,
    url: str = URL,
    admin_key: str = ADMIN_KEY,
    as_json: bool = JSON,
) -> None:
    """The shadow against the serving router: agreement, flagship share, projected cost, and APGR on
    the cascade's labels."""
    params = {"tenant": tenant} if tenant else {}
    result = call("GET", url, admin_key, "/admin/router/compare", params=params)
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    live, labels = result["live"], result["cascade_labels"]
    typer.echo(f"{_scope(tenant)}: serving {result['serving_version']}, shadow {result['shadow_version']}; "
               f"{live['calls']} shadowed calls, {labels['labels']} cascade labels ({labels['escalated']} escalated)")
    if not live["calls"]:
        typer.echo("no shadowed call yet: send traffic with model=auto (or router:<t>) and compare again")
        return
    typer.echo(f"agreement: {100 * live['agreement']:.1f}% of calls go to the same model")
    rows = []
    for role in ("serving", "shadow"):
        on_labels = labels.get(role) or {}
        rows.append({"router": role, "flagship_share": round(100 * live[role]["flagship_share"], 1),
                     "cost_usd": live[role]["cost_usd"], "label_apgr": on_labels.get("apgr"),
                     "label_cpt50": on_labels.get("cpt50")})
    print_rows(rows, ["router", "flagship_share", "cost_usd", "label_apgr", "label_cpt50"])
    shadow = live["shadow"]
    if shadow["estimated_calls"] or shadow["unpriced_calls"]:
        typer.echo(f"the shadow's cost: {shadow['estimated_calls']} calls it would have kept on the cheap model are "
                   f"estimated at that model's mean cost per token; {shadow['unpriced_calls']} could not be priced "
                   "(counted at their served cost)")
    if labels.get("serving") is None:
        typer.echo("APGR needs cascade labels with both outcomes (kept and escalated): none yet")
