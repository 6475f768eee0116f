"""Stream chunks the gateway writes itself (the cache's replays, the usage chunk it adds, a
content-filter end, an error event), in the shapes OpenAI's SDKs parse."""

from __future__ import annotations

from typing import Any

CHAT = "/chat/completions"


def chunk(endpoint: str, chunk_id: str, created: int, model: str, choices: list[dict[str, Any]],
          usage: dict[str, Any] | None = None) -> dict[str, Any]:
    """A chat completion chunk, or a legacy completion's streamed object."""
    body: dict[str, Any] = {"id": chunk_id, "object": "chat.completion.chunk" if endpoint == CHAT else "text_completion",
                            "created": created, "model": model, "choices": choices}
    if usage is not None:
        body["usage"] = usage
    return body


def text_choice(endpoint: str, text: str, finish_reason: str | None = None, index: int = 0) -> dict[str, Any]:
    piece = {"delta": {"content": text}} if endpoint == CHAT else {"text": text}
    return {"index": index, **piece, "finish_reason": finish_reason}


def error_event(message: str, code: str, kind: str = "upstream_error") -> dict[str, Any]:
    """What ends a stream that cannot go on: OpenAI's error object (its SDKs raise it as an APIError)."""
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}
