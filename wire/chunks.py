"""Stream chunks the gateway writes itself (the cache's replays, the usage chunk it adds, a
content-filter end, an error event), in the shapes OpenAI's SDKs parse; and the whole answer a
stream of chunks makes."""

from __future__ import annotations

import time
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


def assemble(chunks: list[dict[str, Any]], endpoint: str) -> dict[str, Any]:
    """The whole answer a stream of chunks makes: texts, tool calls (their arguments joined), token
    logprobs, finish reasons and usage, choice by choice. (The cascade asks the cheap model for a
    stream even when the client wants a whole answer: its first byte then comes with the first token.)"""
    chat = endpoint == CHAT
    choices: dict[int, dict[str, Any]] = {}
    first = chunks[0] if chunks else {}
    created = first.get("created")
    envelope = {"id": str(first.get("id") or ""), "created": created if isinstance(created, int) else int(time.time()),
                "model": first.get("model")}
    usage = None
    for chunk in chunks:
        if isinstance(chunk.get("usage"), dict):
            usage = chunk["usage"]
        for piece in chunk.get("choices") or ():
            if isinstance(piece, dict):
                _add_piece(choices.setdefault(int(piece.get("index") or 0), {}), piece, chat)
    answer: dict[str, Any] = {**envelope, "object": "chat.completion" if chat else "text_completion",
                              "choices": [_finish_choice(index, state, chat) for index, state in sorted(choices.items())]}
    if usage is not None:
        answer["usage"] = usage
    return answer


def _add_piece(state: dict[str, Any], piece: dict[str, Any], chat: bool) -> None:
    delta = piece.get("delta") if chat else piece
    if isinstance(delta, dict):
        for name in ("content", "text", "refusal", "reasoning_content"):
            if isinstance(delta.get(name), str):
                state[name] = state.get(name, "") + delta[name]
        for call in delta.get("tool_calls") or ():
            merged = state.setdefault("tool_calls", {}).setdefault(int(call.get("index") or 0), {"function": {}})
            for name in ("id", "type"):
                merged[name] = merged.get(name) or call.get(name)
            function = call.get("function") or {}
            if function.get("name"):
                merged["function"]["name"] = function["name"]
            merged["function"]["arguments"] = merged["function"].get("arguments", "") + (function.get("arguments") or "")
    logprobs = piece.get("logprobs")
    if isinstance(logprobs, dict):
        gathered = state.setdefault("logprobs", {})
        for name, values in logprobs.items():
            if isinstance(values, list):
                gathered.setdefault(name, []).extend(values)
    if piece.get("finish_reason"):
        state["finish_reason"] = piece["finish_reason"]


def _finish_choice(index: int, state: dict[str, Any], chat: bool) -> dict[str, Any]:
    choice: dict[str, Any] = {"index": index, "finish_reason": state.get("finish_reason")}
    if chat:
        message: dict[str, Any] = {"role": "assistant", "content": state.get("content")}
        if state.get("tool_calls"):
            message["tool_calls"] = [call for _, call in sorted(state["tool_calls"].items())]
        for name in ("refusal", "reasoning_content"):
            if name in state:
                message[name] = state[name]
        choice["message"] = message
    else:
        choice["text"] = state.get("text", "")
    choice["logprobs"] = state.get("logprobs")
    return choice
