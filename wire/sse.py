"""Server-sent events: an incremental parser for upstream streams, and the encoder for ours.

Only what OpenAI-compatible servers use is supported: ``data:`` lines (joined with newlines
when an event has several), ``event:`` names, and comment lines (``:``), which are ignored.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

DONE = b"[DONE]"


@dataclass(frozen=True)
class Event:
    data: bytes
    event: str | None = None


class SSEDecoder:
    """Feed it lines (without or with their line ending); it returns an Event at each blank line."""

    def __init__(self) -> None:
        self._data: list[bytes] = []
        self._event: str | None = None

    def feed(self, line: bytes) -> Event | None:
        line = line.rstrip(b"\r\n")
        if not line:
            return self._flush()
        if line.startswith(b":"):
            return None
        field, _, value = line.partition(b":")
        if value.startswith(b" "):
            value = value[1:]
        if field == b"data":
            self._data.append(value)
        elif field == b"event":
            self._event = value.decode(errors="replace")
        return None

    def _flush(self) -> Event | None:
        if not self._data:
            self._event = None
            return None
        event = Event(data=b"\n".join(self._data), event=self._event)
        self._data, self._event = [], None
        return event

    def close(self) -> Event | None:
        """A stream that ends without a final blank line still delivers its last event."""
        return self._flush()


async def iter_lines(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """Split a byte stream into lines, however the network cut it into chunks."""
    pending = b""
    async for chunk in chunks:
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            yield line
    if pending:
        yield pending


async def iter_events(lines: AsyncIterator[bytes]) -> AsyncIterator[Event]:
    decoder = SSEDecoder()
    async for line in lines:
        event = decoder.feed(line)
        if event is not None:
            yield event
    last = decoder.close()
    if last is not None:
        yield last


def encode(data: bytes) -> bytes:
    return b"data: " + data + b"\n\n"


DONE_EVENT = encode(DONE)
