"""``tollgate tenants …`` and ``tollgate keys …``: thin wrappers over the admin API.

They talk HTTP to a running gateway (``--url`` or ``TOLLGATE_URL``) with an admin key
(``--admin-key`` or ``TOLLGATE_ADMIN_KEY``), so they work the same against any replica.
"""

from __future__ import annotations

import json
from typing import Any, Optional

import httpx
import typer

from .output import print_rows

tenants_app = typer.Typer(no_args_is_help=True, help="Create, list and disable tenants.")
keys_app = typer.Typer(no_args_is_help=True, help="Create, list and revoke API keys.")

_URL = typer.Option("http://127.0.0.1:8080", "--url", envvar="TOLLGATE_URL", help="Gateway base URL.")
_ADMIN_KEY = typer.Option(..., "--admin-key", envvar="TOLLGATE_ADMIN_KEY", help="An admin API key.")
_JSON = typer.Option(False, "--json", help="Print JSON instead of a table.")


def _call(method: str, url: str, admin_key: str, path: str, **kwargs: Any) -> Any:
    try:
        response = httpx.request(
            method, url.rstrip("/") + path, headers={"authorization": f"Bearer {admin_key}"}, timeout=10.0, **kwargs
        )
    except httpx.HTTPError as err:
        typer.echo(f"error: cannot reach {url}: {err}", err=True)
        raise typer.Exit(1) from None
    body = response.json() if response.headers.get("content-type", "").startswith("application/json") else {}
    if response.status_code >= 400:
        message = (body.get("error") or {}).get("message", response.text)
        typer.echo(f"error: {response.status_code}: {message}", err=True)
        raise typer.Exit(1)
    return body


@tenants_app.command("create")
def tenants_create(tenant_id: str, name: Optional[str] = typer.Option(None), url: str = _URL, admin_key: str = _ADMIN_KEY) -> None:
    """Create a tenant."""
    typer.echo(json.dumps(_call("POST", url, admin_key, "/admin/tenants", json={"id": tenant_id, "name": name})))


@tenants_app.command("list")
def tenants_list(url: str = _URL, admin_key: str = _ADMIN_KEY, as_json: bool = _JSON) -> None:
    """List tenants."""
    rows = _call("GET", url, admin_key, "/admin/tenants")["data"]
    print_rows(rows, ["id", "name", "disabled"], as_json)


@tenants_app.command("disable")
def tenants_disable(tenant_id: str, url: str = _URL, admin_key: str = _ADMIN_KEY) -> None:
    """Disable a tenant and revoke all its keys (its records are kept)."""
    typer.echo(json.dumps(_call("DELETE", url, admin_key, f"/admin/tenants/{tenant_id}")))


@keys_app.command("create")
def keys_create(
    tenant: Optional[str] = typer.Option(None, help="Tenant the key belongs to."),
    name: str = typer.Option("", help="A label for the key."),
    admin: bool = typer.Option(False, "--admin", help="Create an admin key instead of a tenant key."),
    url: str = _URL,
    admin_key: str = _ADMIN_KEY,
) -> None:
    """Create a key. The plain key is printed once and never stored."""
    payload = {"tenant": tenant, "name": name, "role": "admin" if admin else "tenant"}
    created = _call("POST", url, admin_key, "/admin/keys", json=payload)
    typer.echo(json.dumps(created))


@keys_app.command("list")
def keys_list(tenant: Optional[str] = typer.Option(None), url: str = _URL, admin_key: str = _ADMIN_KEY, as_json: bool = _JSON) -> None:
    """List keys (ids and labels; secrets are never shown again)."""
    rows = _call("GET", url, admin_key, "/admin/keys", params={"tenant": tenant} if tenant else None)["data"]
    print_rows(rows, ["id", "tenant", "role", "name", "revoked"], as_json)


@keys_app.command("revoke")
def keys_revoke(key_id: str, url: str = _URL, admin_key: str = _ADMIN_KEY) -> None:
    """Revoke a key; every replica refuses it within a second."""
    typer.echo(json.dumps(_call("DELETE", url, admin_key, f"/admin/keys/{key_id}")))
