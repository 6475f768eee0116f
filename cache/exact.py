"""The exact response cache's pure parts: which requests may be cached, under which key, and how a
cached answer is replayed (whole, or as a stream).

A request is cacheable when it is deterministic (``temperature`` 0, or a ``seed``), unless the
operator caches everything; ``Cache-Control: no-cache`` skips the lookup and ``no-store`` skips
both lookup and storage. The key covers the tenant, the endpoint, the model that will answer and
the whole request except what cannot change the answer (streaming, usage options, ``user``), with
keys sorted, so one tenant can never be served another's answer and reordered JSON still hits.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from typing import Any

import orjson

IGNORED_FIELDS = frozenset({"stream", "stream_options", "user", "metadata", "store", "model"})


def cacheable(body: dict[str, Any], deterministic_only: bool) -> bool:
    if not deterministic_only:
        return True
    temperature = body.get("temperature")
    return temperature == 0 or body.get("seed") is not None


def directives(cache_control: str | None) -> tuple[bool, bool]:
    """(may read, may store) from a ``Cache-Control`` request header."""
    values = {part.strip().lower() for part in (cache_control or "").split(",")}
    if "no-store" in values:
        return False, False
    return "no-cache" not in values, True


def cache_key(tenant: str, endpoint: str, model: str, body: dict[str, Any]) -> str:
    normalized = {k: v for k, v in body.items() if k not in IGNORED_FIELDS}
    digest = hashlib.sha256(b"\x00".join([endpoint.encode(), model.encode(),
                                          orjson.dumps(normalized, option=orjson.OPT_SORT_KEYS)])).hexdigest()
    return f"tg:cache:{{t:{tenant}}}:{digest}"


def entry(answer: dict[str, Any], cost_usd: float, flagship_cost_usd: float | None) -> bytes:
    return orjson.dumps({"answer": answer, "cost_usd": cost_usd, "flagship_cost_usd": flagship_cost_usd,
                         "stored_at": round(time.time(), 3)})


def replayed(cached: dict[str, Any], request_id: str) -> dict[str, Any]:
    """A cached answer as a fresh response: its own id and creation time."""
    answer = dict(cached)
    if answer.get("object") == "list":  # embeddings: no id or creation time to renew
        return answer
    prefix = "chatcmpl" if answer.get("object") == "chat.completion" else "cmpl"
    answer["id"], answer["created"] = f"{prefix}-{request_id}", int(time.time())
    return answer


def stream_chunks(answer: dict[str, Any], include_usage: bool, piece_chars: int = 24) -> Iterator[dict[str, Any]]:
    """A whole answer as the chunks an engine would have streamed."""
    chat = answer.get("object") == "chat.completion"
    base = {"id": answer["id"], "object": "chat.completion.chunk" if chat else "text_completion",
            "created": answer["created"], "model": answer["model"]}
    for choice in answer.get("choices") or ():
        index = choice.get("index", 0)
        message = choice.get("message") or {}
        text = (message.get("content") if chat else choice.get("text")) or ""
        if chat:
            yield {**base, "choices": [{"index": index, "delta": {"role": message.get("role", "assistant"), "content": ""},
                                        "finish_reason": None}]}
            if message.get("tool_calls"):
                yield {**base, "choices": [{"index": index, "delta": {"tool_calls": [
                    {**call, "index": i} for i, call in enumerate(message["tool_calls"])]}, "finish_reason": None}]}
        for start in range(0, len(text), piece_chars):
            piece = text[start : start + piece_chars]
            delta = {"delta": {"content": piece}} if chat else {"text": piece}
            yield {**base, "choices": [{"index": index, **delta, "finish_reason": None}]}
        closing: dict[str, Any] = {"delta": {}} if chat else {"text": ""}
        yield {**base, "choices": [{"index": index, **closing, "finish_reason": choice.get("finish_reason")}]}
    if include_usage and answer.get("usage"):
        yield {**base, "choices": [], "usage": answer["usage"]}


class StreamAssembler:
    """Rebuilds a whole answer from streamed chunks, so that a streamed miss can be cached too.
    Answers with tool calls are not assembled (their argument deltas are not worth the risk)."""

    def __init__(self) -> None:
        self.base: dict[str, Any] | None = None
        self.texts: dict[int, list[str]] = {}
        self.finish: dict[int, str | None] = {}
        self.usable = True

    def add(self, chunk: dict[str, Any]) -> None:
        if self.base is None and chunk.get("choices"):
            self.base = {"object": chunk.get("object"), "model": chunk.get("model")}
        for choice in chunk.get("choices") or ():
            index = choice.get("index", 0)
            delta = choice.get("delta")
            if isinstance(delta, dict) and delta.get("tool_calls"):
                self.usable = False
            piece = delta.get("content") if isinstance(delta, dict) else choice.get("text")
            if isinstance(piece, str):
                self.texts.setdefault(index, []).append(piece)
            if choice.get("finish_reason"):
                self.finish[index] = choice["finish_reason"]

    def answer(self, usage: dict | None) -> dict[str, Any] | None:
        if not self.usable or self.base is None or not self.finish:
            return None
        chat = self.base["object"] == "chat.completion.chunk"
        choices = []
        for index in sorted(self.finish):
            text = "".join(self.texts.get(index, []))
            body = {"message": {"role": "assistant", "content": text}} if chat else {"text": text}
            choices.append({"index": index, **body, "finish_reason": self.finish[index]})
        return {"id": "", "object": "chat.completion" if chat else "text_completion", "created": 0,
                "model": self.base["model"], "choices": choices, "usage": usage}
