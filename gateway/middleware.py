"""Request context as a plain ASGI middleware: a request id on every response, and metrics.

Plain ASGI rather than Starlette's BaseHTTPMiddleware: it adds no task or queue per request,
which matters on a path measured in microseconds, and it does not buffer streamed bodies.
"""

from __future__ import annotations

import os
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import metrics
from .errors import APIError

_MEASURED_PATHS = {"/v1/chat/completions": "chat", "/v1/completions": "completions", "/v1/models": "models"}


def new_request_id() -> str:
    """A random UUID4: engines such as llama-cpp-python's server reject any other x-request-id."""
    return str(uuid.UUID(bytes=os.urandom(16), version=4))


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, max_header_bytes: int = 32 * 1024) -> None:
        self.app = app
        self.max_header_bytes = max_header_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if sum(len(name) + len(value) for name, value in scope["headers"]) > self.max_header_bytes:
            error = APIError(431, f"request headers are larger than {self.max_header_bytes} bytes",
                             code="headers_too_large")
            await error.response()(scope, receive, send)
            return
        request_id = new_request_id()
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        header = (b"x-request-id", request_id.encode())
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            _observe(scope["path"], state, status, time.perf_counter() - started)


def _observe(path: str, state: dict, status: int, seconds: float) -> None:
    endpoint = _MEASURED_PATHS.get(path)
    if endpoint is None:
        return
    model = state.get("model", "")
    metrics.REQUESTS.labels(state.get("tenant", ""), model, state.get("route", ""), endpoint, str(status)).inc()
    if not model:
        return
    streamed = state.get("stream", False)
    metrics.REQUEST_SECONDS.labels(model, "true" if streamed else "false").observe(seconds)
    upstream = state.get("upstream_seconds")
    if upstream is not None and not streamed and status == 200:
        metrics.OVERHEAD_SECONDS.observe(max(seconds - upstream, 0.0))
