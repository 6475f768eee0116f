"""A client for a running gateway's HTTP APIs (admin, reports, ledger), as the CLI uses it.

It is the CLI's only way to the gateway, so every command works the same against any replica, and
scripts can use it too::

    from gateway.cli.client import GatewayClient
    tenants = GatewayClient("http://127.0.0.1:8080", admin_key).call("GET", "/admin/tenants")["data"]
"""

from __future__ import annotations

from typing import Any

import httpx

DEFAULT_URL = "http://127.0.0.1:8080"


class GatewayError(Exception):
    """The gateway could not be reached, or answered with an error (``status`` 0: unreachable)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class GatewayClient:
    def __init__(self, url: str, key: str, timeout_s: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.key = key
        self.timeout_s = timeout_s

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        """The JSON answer; raises GatewayError with OpenAI's error message on a 4xx or 5xx."""
        try:
            response = httpx.request(method, self.url + path, headers={"authorization": f"Bearer {self.key}"},
                                     timeout=self.timeout_s, **kwargs)
        except httpx.HTTPError as err:
            raise GatewayError(0, f"cannot reach {self.url}: {err} (is the gateway running? set --url or TOLLGATE_URL)") from None
        body = response.json() if response.headers.get("content-type", "").startswith("application/json") else {}
        if response.status_code >= 400:
            detail = body.get("error") if isinstance(body, dict) else None
            message = detail.get("message", response.text) if isinstance(detail, dict) else response.text
            raise GatewayError(response.status_code, f"{response.status_code}: {message}")
        return body
