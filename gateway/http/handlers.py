"""Every exception an endpoint raises, as an OpenAI-shaped error response.

``APIError`` carries its own status and body; a request FastAPI could not validate, an unknown path
or method, and an unreachable Redis get theirs here; anything else is a bare 500 without a
traceback (it is logged), so no internal detail leaks out.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from redis.exceptions import RedisError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from ..errors import APIError, from_validation_error
from ..logs import Warnings

log = logging.getLogger("tollgate.errors")
throttled = Warnings(log)


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
            return APIError(405, message, code="method_not_allowed", headers=dict(err.headers or {})).response()
        return APIError(err.status_code, str(err.detail), code="http_error").response()

    @app.exception_handler(RedisError)
    async def _store_error(request: Request, err: RedisError) -> Response:
        # Any endpoint that needs Redis while it is unreachable: a clean, retryable 503.
        throttled.warn(f"store unavailable on {request.url.path}: {type(err).__name__}")
        return APIError(503, "store unavailable, try again", code="store_unavailable").response()

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, err: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return APIError(500, "internal error", type="api_error", code="internal_error").response()
