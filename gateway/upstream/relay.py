"""Relaying an opened upstream stream to the client, event by event, and summing it up at the end.

Each chunk gets the public model name; logprobs the gateway asked for (and the client did not) are
removed; the usage chunk the gateway always asks for is dropped again unless the client wanted it
(and added, estimated, when the engine ignored ``include_usage``). An output-moderation window may
hold text back or end the stream (``finish_reason: content_filter``); a cache assembler may rebuild
the whole answer. A failure after the first byte ends the stream with an OpenAI error event, never a
hang. ``close`` (always called once by the owner, whether the stream finished, broke or the client
left) closes the upstream and returns what happened: ``RelayEnd``.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from wire import chunks, sse, tokens
from wire.texts import chunk_finishes, chunk_has_token

from .forwarder import UpstreamStream
from .transport import ReadTimedOut, TransportError

if TYPE_CHECKING:
    from cache.exact import StreamAssembler
    from moderation.stream import StreamFilter


@dataclass(frozen=True, slots=True)
class RelayRules:
    """How the client's stream differs from the upstream's."""

    model: str  # the public model name
    endpoint: str
    include_usage: bool  # the client asked for the usage chunk
    strip_logprobs: bool  # the gateway asked for logprobs the client did not want
    started: float  # perf_counter at the call's start: time to first token counts from here
    deadline: float  # perf_counter: the stream is ended here


@dataclass(frozen=True, slots=True)
class RelayEnd:
    usage: dict[str, Any]  # the engine's, or estimated (then ``estimated: true``)
    ttft_s: float | None
    # None: finished; else content_filter, upstream_timeout, upstream_disconnected or client_disconnected
    error_code: str | None
    answer: dict[str, Any] | None  # the whole answer rebuilt for the cache (finished streams only)


class Relay:
    def __init__(self, stream: UpstreamStream, rules: RelayRules, body: dict[str, Any],
                 window: StreamFilter | None = None, assembler: StreamAssembler | None = None) -> None:
        self.stream, self.rules, self.body = stream, rules, body
        self.window, self.assembler = window, assembler
        self._usage: dict[str, Any] | None = None
        self._tokens = 0
        self._ttft_s: float | None = None
        self._error: str | None = "client_disconnected"  # until the stream ends some other way
        self._envelope: tuple[str, int] = ("", int(time.time()))  # the upstream's chunk id and created
        self._end: RelayEnd | None = None

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            while (event := await self.stream.next_event()) is not None:
                if event.data == sse.DONE:
                    self._error = None
                    for data in self._closing_chunks():
                        yield data
                    yield sse.DONE_EVENT
                    return
                out = self._rewrite(event.data)
                if out is not None:
                    yield out
                if self.window is not None and self.window.blocked:
                    self._error = "content_filter"  # end cleanly, as OpenAI does: a content_filter finish
                    yield self._encode(chunks.chunk(self.rules.endpoint, *self._envelope, self.rules.model,
                                                    [chunks.text_choice(self.rules.endpoint, "", "content_filter")]))
                    yield sse.DONE_EVENT
                    return
                if time.perf_counter() > self.rules.deadline:
                    self._error = "upstream_timeout"
                    yield self._encode(chunks.error_event("request exceeded the gateway's time limit", self._error))
                    return
            self._error = "upstream_disconnected"
            yield self._encode(chunks.error_event("upstream stream ended before it was complete", self._error))
        except TransportError as err:
            self._error = "upstream_timeout" if isinstance(err, ReadTimedOut) else "upstream_disconnected"
            yield self._encode(chunks.error_event(f"upstream stream failed ({err})", self._error))

    def close(self) -> RelayEnd:
        """Close the upstream and say how the stream ended; the same answer every time."""
        if self._end is None:
            self.stream.close()
            usage = self._usage or tokens.estimated_usage(self.body, self._tokens)  # cut short: bill what was made
            answer = None
            if self._error is None and self.assembler is not None:
                answer = self.assembler.answer(usage)
            self._end = RelayEnd(usage, self._ttft_s, self._error, answer)
        return self._end

    def _closing_chunks(self) -> list[bytes]:
        out = []
        if self.window is not None and (rest := self.window.flush()):
            # text still held back in the moderation window when no finish chunk came
            out.append(self._encode(chunks.chunk(self.rules.endpoint, *self._envelope, self.rules.model,
                                                 [chunks.text_choice(self.rules.endpoint, rest)])))
        if self._usage is None:  # the engine ignored include_usage: estimate it
            self._usage = tokens.estimated_usage(self.body, self._tokens)
            if self.rules.include_usage:
                out.append(self._encode(chunks.chunk(self.rules.endpoint, *self._envelope, self.rules.model, [],
                                                     self._usage)))
        return out

    def _rewrite(self, data: bytes) -> bytes | None:
        """The chunk for the client (None to drop it)."""
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            return sse.encode(data)
        if not isinstance(chunk, dict) or "error" in chunk:
            return sse.encode(data)
        if not self._envelope[0] and isinstance(chunk.get("id"), str):
            created = chunk.get("created")
            self._envelope = (chunk["id"], created if isinstance(created, int) else self._envelope[1])
        chunk["model"] = self.rules.model
        carried = chunk_has_token(chunk)
        if carried:
            self._tokens += 1
            if self._ttft_s is None:
                self._ttft_s = time.perf_counter() - self.rules.started
        if self.window is not None:
            if self.window.filter_chunk(chunk):
                return None
            if carried and not chunk_has_token(chunk) and not chunk_finishes(chunk):
                return None  # its text is held back in the moderation window for now
        if self.assembler is not None:
            self.assembler.add(chunk)
        if self.rules.strip_logprobs:
            for choice in chunk.get("choices") or ():
                choice.pop("logprobs", None)
        usage = chunk.get("usage")
        if usage:
            self._usage = usage
        if not self.rules.include_usage:
            if usage and not chunk.get("choices"):
                return None
            chunk.pop("usage", None)
        return sse.encode(orjson.dumps(chunk))

    @staticmethod
    def _encode(value: dict[str, Any]) -> bytes:
        return sse.encode(orjson.dumps(value))
