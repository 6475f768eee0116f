"""``tollgate tenants …`` and ``tollgate keys …``: thin wrappers over the admin API.

They talk HTTP to a running gateway (``--url`` or ``TOLLGATE_URL``) with an admin key
(``--admin-key`` or ``TOLLGATE_ADMIN_KEY``), so they work the same against any replica.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from .options import ADMIN_KEY, JSON, URL, call
from .output import print_rows

tenants_app = typer.Typer(no_args_is_help=True, help="Create, list and disable tenants.")
admin_app = typer.Typer(no_args_is_help=True, help="Host-side administration (no running gateway or key needed).")
keys_app = typer.Typer(no_args_is_help=True, help="Create, list, update, rotate and revoke API keys.")

@tenants_app.command("create")
def tenants_create(tenant_id: str, name: str | None = typer.Option(None), url: str = URL, admin_key: str = ADMIN_KEY) -> None:
    """Create a tenant."""
    typer.echo(json.dumps(call("POST", url, admin_key, "/admin/tenants", json={"id": tenant_id, "name": name})))


@tenants_app.command("list")
def tenants_list(url: str = URL, admin_key: str = ADMIN_KEY, as_json: bool = JSON) -> None:
    """List tenants."""
    rows = call("GET", url, admin_key, "/admin/tenants")["data"]
    print_rows(rows, ["id", "name", "disabled"], as_json)


@tenants_app.command("update")
def tenants_update(
    tenant_id: str,
    name: str | None = typer.Option(None, help="A new display name."),
    prefix_cache_group: str | None = typer.Option(
        None, help="Share cached prompt prefixes with the tenants of this group (they can then probe each other's "
                   "prompts by timing); 'none' gives the tenant its own cache again."),
    url: str = URL, admin_key: str = ADMIN_KEY,
) -> None:
    """Rename a tenant or change its prefix-cache group."""
    changes: dict[str, str | None] = {}
    if name is not None:
        changes["name"] = name
    if prefix_cache_group is not None:
        changes["prefix_cache_group"] = None if prefix_cache_group == "none" else prefix_cache_group
    typer.echo(json.dumps(call("PATCH", url, admin_key, f"/admin/tenants/{tenant_id}", json=changes)))


@tenants_app.command("disable")
def tenants_disable(tenant_id: str, url: str = URL, admin_key: str = ADMIN_KEY) -> None:
    """Disable a tenant and revoke all its keys (its records are kept)."""
    typer.echo(json.dumps(call("DELETE", url, admin_key, f"/admin/tenants/{tenant_id}")))


def _terms(expires: str | None, models: list[str], tags: list[str], meta: list[str]) -> dict[str, object]:
    """The key-terms fields of the admin API from CLI options (only those given)."""
    terms: dict[str, object] = {}
    if expires is not None:
        terms["expires_in" if expires != "never" else "expires_at"] = None if expires == "never" else expires
    if models:
        terms["models"] = None if models == ["all"] else [m for item in models for m in item.split(",") if m]
    if tags:
        terms["tags"] = [] if tags == ["none"] else tags
    if meta:
        pairs = [item.partition("=") for item in meta]
        if any(not sep for _, sep, _ in pairs):
            typer.echo("error: --meta takes name=value", err=True)
            raise typer.Exit(2)
        terms["metadata"] = {name: value for name, _, value in pairs}
    return terms


_EXPIRES = typer.Option(None, "--expires", help="Lifetime from now: 90s, 15m, 12h, 30d or 4w ('never': no expiry).")
_MODELS = typer.Option([], "--model", help="A public model the key may call (repeat, or comma-separated; 'all': any).")
_TAGS = typer.Option([], "--tag", help="A tag: calls with the key count in its report row (repeat; 'none': clear).")
_META = typer.Option([], "--meta", help="Free metadata, name=value (repeat), e.g. owner=alice.")


@keys_app.command("create")
def keys_create(
    tenant: str | None = typer.Option(None, help="Tenant the key belongs to."),
    name: str = typer.Option("", help="A label for the key."),
    admin: bool = typer.Option(False, "--admin", help="Create an admin key instead of a tenant key."),
    expires: str | None = _EXPIRES,
    model: list[str] = _MODELS,
    tag: list[str] = _TAGS,
    meta: list[str] = _META,
    url: str = URL,
    admin_key: str = ADMIN_KEY,
) -> None:
    """Create a key. The plain key is printed once and never stored."""
    payload = {"tenant": tenant, "name": name, "role": "admin" if admin else "tenant", **_terms(expires, model, tag, meta)}
    created = call("POST", url, admin_key, "/admin/keys", json=payload)
    typer.echo(json.dumps(created))


@keys_app.command("update")
def keys_update(
    key_id: str,
    name: str | None = typer.Option(None, help="A new label."),
    expires: str | None = _EXPIRES,
    model: list[str] = _MODELS,
    tag: list[str] = _TAGS,
    meta: list[str] = _META,
    url: str = URL,
    admin_key: str = ADMIN_KEY,
) -> None:
    """Change a key's label, expiry, models, tags or metadata (what is not given stays)."""
    payload = {**({"name": name} if name is not None else {}), **_terms(expires, model, tag, meta)}
    typer.echo(json.dumps(call("PATCH", url, admin_key, f"/admin/keys/{key_id}", json=payload)))


@keys_app.command("rotate")
def keys_rotate(
    key_id: str,
    overlap: str = typer.Option("24h", help="How long the old secret keeps working: 15m, 12h, 7d..."),
    url: str = URL,
    admin_key: str = ADMIN_KEY,
) -> None:
    """A new secret for the same key (limits, tags and reports carry on). Printed once; the old
    secret keeps working for --overlap so clients can move over."""
    typer.echo(json.dumps(call("POST", url, admin_key, f"/admin/keys/{key_id}/rotate", json={"overlap": overlap})))


@keys_app.command("list")
def keys_list(tenant: str | None = typer.Option(None), url: str = URL, admin_key: str = ADMIN_KEY, as_json: bool = JSON) -> None:
    """List keys (ids and labels; secrets are never shown again)."""
    rows = call("GET", url, admin_key, "/admin/keys", params={"tenant": tenant} if tenant else None)["data"]
    if not as_json:
        rows = [{**row, "tenant": row["tenant"] or "(admin)" if row["role"] == "admin" else row["tenant"],
                 "expires": _when(row.get("expires")), "models": ",".join(row.get("models") or ["all"]),
                 "tags": ",".join(row.get("tags") or [])} for row in rows]
    print_rows(rows, ["id", "tenant", "role", "name", "revoked", "expires", "models", "tags"], as_json)


def _when(epoch: int | None) -> str:
    import datetime

    if epoch is None:
        return "never"
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")


@keys_app.command("revoke")
def keys_revoke(key_id: str, url: str = URL, admin_key: str = ADMIN_KEY) -> None:
    """Revoke a key; every replica refuses it within a second."""
    typer.echo(json.dumps(call("DELETE", url, admin_key, f"/admin/keys/{key_id}")))


@admin_app.command("recover")
def admin_recover(
    config: Path | None = typer.Option(None, "--config", help="The gateway's config (its data_dir, redis_url, secret)."),
    revoke_others: bool = typer.Option(False, "--revoke-others", help="Also revoke every other admin key."),
    name: str = typer.Option("recovered admin", help="A label for the new key."),
) -> None:
    """A new admin key when the last one is lost. Run it on the gateway's host: it needs the data
    directory (or TOLLGATE_KEY_SECRET and REDIS_URL), which is what proves you may."""
    from ..config import ConfigError, load_settings
    from ..ops.recover import RecoveryError, recover_admin_key

    try:
        plain, revoked = recover_admin_key(load_settings(config), name, revoke_others)
    except (ConfigError, RecoveryError, OSError) as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from None
    if revoked:
        typer.echo(f"revoked admin keys: {', '.join(revoked)}", err=True)
    typer.echo(f"  admin key: {plain}   <- shown once, store it now")
