"""OpenAI response shapes the simulator emits (chat and legacy completions, whole and streamed)."""

from __future__ import annotations

import time
from typing import Any

from .textgen import TokenOut, token_bytes


def usage(prompt_tokens: int, completion_tokens: int, cached_tokens: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": cached_tokens},
    }


def chat_logprobs(tokens: list[TokenOut], top: int) -> dict[str, Any]:
    return {
        "content": [
            {
                "token": t.text,
                "logprob": t.logprob,
                "bytes": token_bytes(t.text),
                "top_logprobs": [
                    {"token": t.text, "logprob": t.logprob, "bytes": token_bytes(t.text)},
                    *(
                        {"token": alt, "logprob": lp, "bytes": token_bytes(alt)}
                        for alt, lp in t.alternatives[: max(top - 1, 0)]
                    ),
                ][:top],
            }
            for t in tokens
        ]
    }


def completion_logprobs(tokens: list[TokenOut], top: int, offset: int = 0) -> dict[str, Any]:
    offsets, position = [], offset
    for t in tokens:
        offsets.append(position)
        position += len(t.text)
    return {
        "tokens": [t.text for t in tokens],
        "token_logprobs": [t.logprob for t in tokens],
        "top_logprobs": [{t.text: t.logprob, **dict(t.alternatives[: max(top - 1, 0)])} for t in tokens] if top else None,
        "text_offset": offsets,
    }


class Shaper:
    """Builds the objects of one answer; ids and timestamps are fixed per request."""

    def __init__(self, request_id: str, model: str, chat: bool, logprobs: bool, top_logprobs: int) -> None:
        self.id = ("chatcmpl-" if chat else "cmpl-") + request_id
        self.model = model
        self.chat = chat
        self.logprobs = logprobs
        self.top = top_logprobs
        self.created = int(time.time())
        self.object = "chat.completion" if chat else "text_completion"

    def whole(self, tokens: list[TokenOut], finish: str, use: dict[str, Any], tool_calls: list | None = None) -> dict[str, Any]:
        return self.envelope([self.choice(0, tokens, finish, tool_calls)], use)

    def choice(self, index: int, tokens: list[TokenOut], finish: str, tool_calls: list | None = None) -> dict[str, Any]:
        text = "".join(t.text for t in tokens)
        choice: dict[str, Any] = {"index": index, "finish_reason": finish}
        if self.chat:
            message: dict[str, Any] = {"role": "assistant", "content": None if tool_calls else text}
            if tool_calls:
                message["tool_calls"] = tool_calls
            choice["message"] = message
            choice["logprobs"] = chat_logprobs(tokens, self.top) if self.logprobs else None
        else:
            choice["text"] = text
            choice["logprobs"] = completion_logprobs(tokens, self.top) if self.logprobs else None
        return choice

    def chunk(self, delta: dict[str, Any] | str, finish: str | None = None, token: TokenOut | None = None,
              with_usage_field: bool = False, index: int = 0) -> dict[str, Any]:
        choice: dict[str, Any] = {"index": index, "finish_reason": finish}
        if self.chat:
            choice["delta"] = delta
            choice["logprobs"] = chat_logprobs([token], self.top) if (self.logprobs and token) else None
        else:
            choice["text"] = delta if isinstance(delta, str) else ""
            choice["logprobs"] = completion_logprobs([token], self.top) if (self.logprobs and token) else None
        body = self.envelope([choice], None)
        body["object"] = "chat.completion.chunk" if self.chat else "text_completion"
        if not with_usage_field:
            del body["usage"]
        return body

    def usage_chunk(self, use: dict[str, Any]) -> dict[str, Any]:
        body = self.envelope([], use)
        body["object"] = "chat.completion.chunk" if self.chat else "text_completion"
        return body

    def envelope(self, choices: list[dict[str, Any]], use: dict[str, Any] | None) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": self.object,
            "created": self.created,
            "model": self.model,
            "choices": choices,
            "usage": use,
        }


def error(message: str, code: int, kind: str = "BadRequestError") -> dict[str, Any]:
    """vLLM's error body: OpenAI's shape with the HTTP status as code."""
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}
