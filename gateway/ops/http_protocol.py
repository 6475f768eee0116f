"""uvicorn's httptools protocol with what an Internet-facing server needs that uvicorn lacks.

* A header deadline: a connection must finish a request's headers within ``header_timeout_s`` of
  opening (or of starting that request), else it is closed. uvicorn closes idle keep-alive
  connections after a response, but a connection that never finishes its first request's headers
  (slowloris), or never sends anything, would otherwise stay open for good.
* HTTP/1.0: such a client cannot read chunked encoding, which uvicorn uses for any body of unknown
  length (a stream). For HTTP/1.0 requests the body is sent as it is and ends when the connection
  closes, as HTTP/1.0 defines it.

The settings reach each worker process through ``HEADER_TIMEOUT_ENV`` (``tollgate serve`` sets it).
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

HEADER_TIMEOUT_ENV = "TOLLGATE_HEADER_TIMEOUT_S"


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.header_timeout_s = float(os.environ.get(HEADER_TIMEOUT_ENV) or 10.0)
        self._header_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._header_deadline is None:
            self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()
        if self.scope.get("http_version") == "1.0" and type(self.cycle) is RequestResponseCycle:
            self.cycle.__class__ = CloseDelimitedCycle  # the same object, answering the HTTP/1.0 way

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._header_deadline = self.loop.call_later(self.header_timeout_s, self._headers_too_slow)

    def _disarm(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _headers_too_slow(self) -> None:
        self._header_deadline = None
        if not self.transport.is_closing():
            self.transport.close()


class CloseDelimitedCycle(RequestResponseCycle):
    """A response to an HTTP/1.0 request whose length is not known: no chunked encoding; the body
    ends when the connection closes (uvicorn never keeps HTTP/1.0 connections alive)."""

    _close_delimited = False

    async def send(self, message: Any) -> None:
        if message["type"] == "http.response.start" and not self.response_started:
            headers = message.get("headers") or []
            if not any(name.lower() in (b"content-length", b"transfer-encoding") for name, _ in headers):
                self._close_delimited = True
                self.chunked_encoding = False
                self.expected_content_length = sys.maxsize
        elif self._close_delimited and message["type"] == "http.response.body" and not message.get("more_body", False):
            self.expected_content_length = len(message.get("body", b""))  # the last piece ends it
        await super().send(message)
