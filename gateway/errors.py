"""OpenAI-style errors: ``{"error": {"message", "type", "param", "code"}}`` with the right status.

Every failure a client can cause must end here as a 4xx with a clear message; anything else
becomes a plain 500 without a traceback (and is logged), so no internal detail leaks out.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from redis.exceptions import RedisError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

log = logging.getLogger("tollgate.errors")

_TYPE_BY_STATUS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    409: "invalid_request_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    429: "rate_limit_error",
    431: "invalid_request_error",
    502: "upstream_error",
    503: "service_unavailable",
    504: "timeout_error",
}


class APIError(Exception):
    """An error the gateway answers with; ``code`` is the machine-readable reason."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        type: str | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.extra = extra or {}  # more fields for the error object (e.g. moderation categories)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.type = type or _TYPE_BY_STATUS.get(status, "api_error")
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
                **self.extra,
            }
        }

    def response(self) -> Response:
        return Response(
            orjson.dumps(self.body()),
            status_code=self.status,
            media_type="application/json",
            headers=self.headers,
        )


def from_validation_error(err: ValidationError | RequestValidationError) -> APIError:
    """The first problem of a pydantic validation, named by its field path (e.g. ``messages.0.role``)."""
    first = err.errors()[0]
    location = [str(part) for part in first.get("loc", ()) if part not in ("body",)]
    param = ".".join(location) or None
    message = first.get("msg", "invalid request")
    if param:
        message = f"{param}: {message}"
    return APIError(400, message, code="invalid_value", param=param)


def install_error_handlers(app: FastAPI) -> None:
    """Route every exception to an OpenAI-shaped body; unknown ones to a bare 500."""

    @app.exception_handler(APIError)
    async def _api_error(_: Request, err: APIError) -> Response:
        return err.response()

    @app.exception_handler(RequestValidationError)
    async def _request_validation(_: Request, err: RequestValidationError) -> Response:
        return from_validation_error(err).response()

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, err: StarletteHTTPException) -> Response:
        if err.status_code == 404:
            message = f"no route for {request.method} {request.url.path}"
            return APIError(404, message, code="not_found").response()
        if err.status_code == 405:
            message = f"method {request.method} not allowed on {request.url.path}"
            return APIError(405, message, code="method_not_allowed").response()
        return APIError(err.status_code, str(err.detail), code="http_error").response()

    @app.exception_handler(RedisError)
    async def _store_error(request: Request, err: RedisError) -> Response:
        # Any endpoint that needs Redis while it is unreachable: a clean, retryable 503.
        log.warning("store unavailable on %s %s: %s", request.method, request.url.path, type(err).__name__)
        return APIError(503, "store unavailable, try again", code="store_unavailable").response()

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, err: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return APIError(500, "internal error", type="api_error", code="internal_error").response()
