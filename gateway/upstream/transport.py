"""The seam between forwarding and the network: one backend's way of sending a request.

Forwarding (``forwarder.py``) decides what to send where and what a failure means; a transport only
moves bytes. ``AiohttpTransport`` is the real one (pooled connections, the backend's connect and
read timeouts); ``MockTransport`` answers from a function, so the whole request path runs in a unit
test without a process or a socket, as httpx's ``MockTransport`` does for httpx.

A transport raises ``ConnectFailed`` when the replica cannot be reached (it is marked down),
``ReadTimedOut`` when it goes silent for longer than the read timeout, and ``StreamBroken`` when a
body that started stops before its end.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

import aiohttp


class TransportError(Exception):
    """One attempt failed in a way another replica or backend may not."""


class ConnectFailed(TransportError):
    """Nothing answered at that address (refused, unreachable, reset before an answer)."""


class ReadTimedOut(TransportError):
    """The replica accepted the request and then stayed silent past the read timeout."""


class StreamBroken(TransportError):
    """A body (whole or streamed) stopped before its end."""


class UpstreamResponse(Protocol):
    status: int

    async def read(self) -> bytes: ...

    def chunks(self) -> AsyncIterator[bytes]: ...

    def release(self) -> None:
        """The body was read: the connection goes back to the pool."""

    def close(self) -> None:
        """Abandon the answer: the connection is closed, so the engine stops generating."""


class Transport(Protocol):
    async def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> UpstreamResponse: ...

    async def get_text(self, url: str, headers: Mapping[str, str], timeout_s: float) -> tuple[int, str]: ...

    def start(self) -> None: ...

    async def close(self) -> None: ...


class _AiohttpResponse:
    __slots__ = ("_response", "status")

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response
        self.status = response.status

    async def read(self) -> bytes:
        try:
            return await self._response.read()
        except TimeoutError as err:
            raise ReadTimedOut("timed out reading the answer") from err
        except aiohttp.ClientError as err:
            raise StreamBroken(f"answer cut short ({type(err).__name__})") from err

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            async for data in self._response.content.iter_any():
                yield data
        except TimeoutError as err:
            raise ReadTimedOut("timed out inside the stream") from err
        except aiohttp.ClientError as err:
            raise StreamBroken(f"stream failed ({type(err).__name__})") from err

    def release(self) -> None:
        self._response.release()

    def close(self) -> None:
        self._response.close()


class AiohttpTransport:
    """Pooled connections to one backend's replicas, with its connect and read timeouts."""

    def __init__(self, connect_timeout_s: float, read_timeout_s: float, max_connections: int) -> None:
        self._timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout_s, sock_read=read_timeout_s)
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=self._max_connections, keepalive_timeout=30, enable_cleanup_closed=True)
        self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout, auto_decompress=True,
                                              skip_auto_headers=("User-Agent",))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> UpstreamResponse:
        assert self._session is not None, "the transport was not started"
        try:
            response = await self._session.post(url, data=body, headers=headers)
        except TimeoutError as err:
            # First: aiohttp's socket timeouts are also ClientConnectionErrors.
            raise ReadTimedOut("timed out") from err
        except aiohttp.ClientConnectionError as err:
            raise ConnectFailed(f"connection failed ({type(err).__name__})") from err
        return _AiohttpResponse(response)

    async def get_text(self, url: str, headers: Mapping[str, str], timeout_s: float) -> tuple[int, str]:
        assert self._session is not None, "the transport was not started"
        try:
            async with self._session.get(url, headers=headers, timeout=aiohttp.ClientTimeout(total=timeout_s)) as response:
                return response.status, await response.text()
        except TimeoutError as err:
            raise ReadTimedOut("timed out") from err
        except (aiohttp.ClientError, UnicodeDecodeError) as err:
            raise ConnectFailed(type(err).__name__) from err


@dataclass
class MockResponse:
    """A canned answer: a status and the body's pieces (several pieces make a stream).

    ``fail_after`` pieces, the body breaks (``StreamBroken``), as a dropped connection would; after
    ``stall_after`` pieces, it stops sending (an engine stuck mid-answer)."""

    status: int = 200
    pieces: list[bytes] = field(default_factory=list)
    fail_after: int | None = None
    stall_after: int | None = None
    closed: bool = False

    async def read(self) -> bytes:
        return b"".join([piece async for piece in self.chunks()])

    async def chunks(self) -> AsyncIterator[bytes]:
        for index, piece in enumerate(self.pieces):
            if self.fail_after is not None and index >= self.fail_after:
                raise StreamBroken("mock: cut")
            if self.stall_after is not None and index >= self.stall_after:
                await asyncio.sleep(3600)
            await asyncio.sleep(0)
            yield piece

    def release(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


MockHandler = Callable[[str, bytes], Awaitable[MockResponse]]  # (url, body) -> answer; may raise TransportError


class MockTransport:
    """Answers every request from ``handler``; for tests of the request path without a network."""

    def __init__(self, handler: MockHandler) -> None:
        self.handler = handler
        self.sent: list[tuple[str, bytes]] = []

    def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> UpstreamResponse:
        self.sent.append((url, body))
        return await self.handler(url, body)

    async def get_text(self, url: str, headers: Mapping[str, str], timeout_s: float) -> tuple[int, str]:
        response = await self.handler(url, b"")
        return response.status, (await response.read()).decode()
