"""``tollgate tenants …`` and ``tollgate keys …``: thin wrappers over the admin API.

They talk HTTP to a running gateway (``--url`` or ``TOLLGATE_URL``) with an admin key
(``--admin-key`` or ``TOLLGATE_ADMIN_KEY``), so they work the same against any replica.
"""

from __future__ import annotations

import json

import typer

from .options import ADMIN_KEY, JSON, URL, call
from .output import print_rows

tenants_app = typer.Typer(no_args_is_help=True, help="Create, list and disable tenants.")
keys_app = typer.Typer(no_args_is_help=True, help="Create, list and revoke API keys.")

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


@keys_app.command("create")
def keys_create(
    tenant: str | None = typer.Option(None, help="Tenant the key belongs to."),
    name: str = typer.Option("", help="A label for the key."),
    admin: bool = typer.Option(False, "--admin", help="Create an admin key instead of a tenant key."),
    url: str = URL,
    admin_key: str = ADMIN_KEY,
) -> None:
    """Create a key. The plain key is printed once and never stored."""
    payload = {"tenant": tenant, "name": name, "role": "admin" if admin else "tenant"}
    created = call("POST", url, admin_key, "/admin/keys", json=payload)
    typer.echo(json.dumps(created))


@keys_app.command("list")
def keys_list(tenant: str | None = typer.Option(None), url: str = URL, admin_key: str = ADMIN_KEY, as_json: bool = JSON) -> None:
    """List keys (ids and labels; secrets are never shown again)."""
    rows = call("GET", url, admin_key, "/admin/keys", params={"tenant": tenant} if tenant else None)["data"]
    print_rows(rows, ["id", "tenant", "role", "name", "revoked"], as_json)


@keys_app.command("revoke")
def keys_revoke(key_id: str, url: str = URL, admin_key: str = ADMIN_KEY) -> None:
    """Revoke a key; every replica refuses it within a second."""
    typer.echo(json.dumps(call("DELETE", url, admin_key, f"/admin/keys/{key_id}")))
