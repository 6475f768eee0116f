"""A lean, pipelined Redis connection for the request path's two scripts (admit and record).

Measured on this machine (bench notes in docs/benchmarks.md): redis-py spends about 65 us of CPU
per PING and 95-150 us per script call, which alone would cap a worker near 3,000 calls/s with
two calls per request; a plain asyncio stream does a PING in about 18 us. So the hot path keeps
one connection per worker, writes each command as soon as it is made (many in flight, replies in
order), and parses replies with hiredis. Everything else (admin, reports, Redis Cluster, TLS)
uses redis-py. Every call is bounded by a timeout; a timeout closes the connection, since a late
reply could otherwise be taken as the answer to the next command.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import deque
from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote, urlparse

import hiredis
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError


def _encode(part: Any) -> bytes:
    if isinstance(part, bytes):
        return part
    if isinstance(part, str):
        return part.encode()
    if isinstance(part, bool):
        return b"1" if part else b"0"
    if isinstance(part, int):
        return b"%d" % part
    return repr(part).encode()


def pack(parts: Sequence[Any]) -> bytes:
    """One command in RESP: ``*<n>`` then ``$<len>`` and the bytes of each part."""
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        data = _encode(part)
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


class Script:
    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()


class PipelinedConnection:
    """One connection with replies matched to commands in order; reconnects on the next call."""

    def __init__(self, url: str, timeout_s: float) -> None:
        parsed = urlparse(url)
        self.host, self.port = parsed.hostname or "127.0.0.1", parsed.port or 6379
        self.db = int(parsed.path.lstrip("/") or 0)
        self.username = unquote(parsed.username) if parsed.username else None
        self.password = unquote(parsed.password) if parsed.password else None
        self.timeout_s = timeout_s
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task | None = None
        self._pending: deque[asyncio.Future] = deque()
        self._outgoing: list[bytes] = []
        self._connecting = asyncio.Lock()

    async def call(self, *parts: Any) -> Any:
        if self._writer is None:
            await self._connect()
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._pending.append(future)
        self._outgoing.append(pack(parts))
        if len(self._outgoing) == 1:  # commands made in the same loop turn go out in one write
            loop.call_soon(self._flush)
        timer = loop.call_later(self.timeout_s, self._expire, future)
        try:
            reply = await future
        finally:
            timer.cancel()
        if isinstance(reply, hiredis.ReplyError):
            raise ResponseError(str(reply))
        return reply

    def _flush(self) -> None:
        data, self._outgoing = b"".join(self._outgoing), []
        if self._writer is not None:
            self._writer.write(data)

    def _expire(self, future: asyncio.Future) -> None:
        if not future.done():
            self._close(RedisConnectionError(f"no answer from Redis within {self.timeout_s:g}s"))

    async def _connect(self) -> asyncio.StreamWriter:
        async with self._connecting:
            if self._writer is not None:
                return self._writer
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(self.host, self.port), self.timeout_s)
            except (OSError, TimeoutError) as err:
                raise RedisConnectionError(f"cannot connect to Redis: {err}") from None
            self._writer, self._outgoing = writer, []
            self._reader_task = asyncio.get_running_loop().create_task(self._read_replies(reader))
            if self.password is not None:
                await self.call("AUTH", *([self.username] if self.username else []), self.password)
            if self.db:
                await self.call("SELECT", self.db)
            return writer

    async def _read_replies(self, stream: asyncio.StreamReader) -> None:
        parser = hiredis.Reader()
        try:
            while data := await stream.read(65536):
                parser.feed(data)
                while (reply := parser.gets()) is not False:
                    future = self._pending.popleft()
                    if not future.done():
                        future.set_result(reply)
        except (OSError, asyncio.IncompleteReadError, hiredis.ProtocolError, IndexError):
            pass
        self._close(RedisConnectionError("Redis closed the connection"))

    def _close(self, error: Exception) -> None:
        """Fail everything in flight and drop the connection; the next call reconnects."""
        writer, self._writer, self._outgoing = self._writer, None, []
        if writer is not None:
            writer.close()
        if self._reader_task is not None and self._reader_task is not asyncio.current_task():
            self._reader_task.cancel()
        self._reader_task = None
        while self._pending:
            future = self._pending.popleft()
            if not future.done():
                future.set_exception(error)

    async def close(self) -> None:
        self._close(RedisConnectionError("closed"))


class ScriptRunner:
    """Runs Lua scripts by SHA, loading a script the first time the server says it lacks it."""

    def __init__(self, redis: Redis, url: str, timeout_s: float) -> None:
        self._fast = PipelinedConnection(url, timeout_s) if url.startswith("redis://") else None
        self._redis = redis
        self._fallback: dict[str, Any] = {}

    async def run(self, script: Script, keys: Sequence[str], args: Sequence[Any]) -> Any:
        if self._fast is None:  # TLS, unix socket or cluster URLs: redis-py does the work
            registered = self._fallback.get(script.sha)
            if registered is None:
                registered = self._fallback[script.sha] = self._redis.register_script(script.source)
            return await registered(keys=list(keys), args=list(args))
        try:
            return await self._fast.call("EVALSHA", script.sha, len(keys), *keys, *args)
        except ResponseError as err:
            if not str(err).startswith("NOSCRIPT"):
                raise
            await self._fast.call("SCRIPT", "LOAD", script.source)
            return await self._fast.call("EVALSHA", script.sha, len(keys), *keys, *args)

    async def command(self, *parts: Any) -> Any:
        """One plain command (GET, SET ...) on the request path's connection."""
        if self._fast is None:
            return await self._redis.execute_command(*parts)
        return await self._fast.call(*parts)

    async def close(self) -> None:
        if self._fast is not None:
            await self._fast.close()
