"""Options the commands share, and ``call``: a gateway request whose failure ends the command."""

from __future__ import annotations

from typing import Any

import typer

from .client import DEFAULT_URL, GatewayClient, GatewayError

URL = typer.Option(DEFAULT_URL, "--url", envvar="TOLLGATE_URL", help="Gateway base URL (env TOLLGATE_URL).")
ADMIN_KEY = typer.Option(..., "--admin-key", envvar="TOLLGATE_ADMIN_KEY", help="An admin API key (env TOLLGATE_ADMIN_KEY).")
JSON = typer.Option(False, "--json", help="Print JSON instead of a table.")


def call(method: str, url: str, key: str, path: str, **kwargs: Any) -> Any:
    """``GatewayClient.call``, printing the gateway's error and exiting 1 when it fails."""
    try:
        return GatewayClient(url, key).call(method, path, **kwargs)
    except GatewayError as err:
        typer.echo(f"error: {err.message}", err=True)
        raise typer.Exit(1) from None
