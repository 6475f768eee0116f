"""Request context as a plain ASGI middleware: a request id on every response, and the header limit.

Plain ASGI rather than Starlette's BaseHTTPMiddleware: it adds no task or queue per request,
which matters on a path measured in microseconds, and it does not buffer streamed bodies. (Calls
are counted in the Prometheus metrics when they are recorded, from their ledger record.)
"""

from __future__ import annotations

import os
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import APIError


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
        scope.setdefault("state", {})["request_id"] = request_id
        header = (b"x-request-id", request_id.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        await self.app(scope, receive, send_with_id)
