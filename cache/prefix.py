"""Prefix-aware replica choice, the pure part: block hashes of a prompt, and which replica to use.

A self-hosted engine skips the prefill of a prompt prefix it still holds in its KV cache, but only
the replica that served it holds it. So the prompt (the chat flattened as the engine would see it)
is tokenized and cut into fixed-size blocks whose hashes are chained (a block's hash covers every
token before it, as in vLLM's automatic prefix caching); a shared index remembers which replica
last served each block chain. The request goes to the replica holding its longest prefix, unless
that replica is much busier than the others, so that one hot system prompt cannot pile every
request onto one replica.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from wire.texts import content_text


def flatten(body: dict[str, Any]) -> str:
    """The text an engine's chat template makes of a request (role markers and content, in order)."""
    messages = body.get("messages")
    if isinstance(messages, list):
        parts = []
        for message in messages:
            if not isinstance(message, dict):
                continue
            parts.append(f"<|{message.get('role', 'user')}|>\n{content_text(message.get('content'))}\n")
        return "".join(parts)
    prompt = body.get("prompt")
    return prompt if isinstance(prompt, str) else ""


def block_hashes(tokens: Sequence[int], block_tokens: int, max_blocks: int, salt: str = "") -> list[str]:
    """Chained hashes of the prompt's full blocks (the last partial block is never cached). A salt
    starts the chain, as an engine's ``cache_salt`` does: the same prompt under two salts shares no block."""
    hashes, previous = [], salt.encode()
    blocks = min(len(tokens) // block_tokens, max_blocks)
    for index in range(blocks):
        block = tokens[index * block_tokens : (index + 1) * block_tokens]
        previous = hashlib.blake2b(previous + b",".join(b"%d" % t for t in block), digest_size=8).digest()
        hashes.append(previous.hex())
    return hashes


def longest_prefix(holders: Sequence[bytes | str | None]) -> tuple[int, str | None]:
    """How many leading blocks the index knows, and the replica that served the deepest of them."""
    matched = 0
    for holder in holders:
        if holder is None:
            break
        matched += 1
    if matched == 0:
        return 0, None
    deepest = holders[matched - 1]
    return matched, deepest.decode() if isinstance(deepest, bytes) else deepest


def choose(holder: int | None, loads: Sequence[float], max_load_ratio: float, start: int = 0) -> int:
    """The holder of the prefix, unless its load (plus one) exceeds ``max_load_ratio`` times the
    mean load (plus one); then the least-loaded replica (ties broken from ``start``, rotated by the
    caller, so that new prefixes spread over an idle cluster). The plus-ones keep an idle cluster
    from treating one request in flight as an overload."""
    count = len(loads)
    least = min(range(count), key=lambda i: (loads[i], (i - start) % count))
    if holder is None or not 0 <= holder < len(loads):
        return least
    mean = sum(loads) / len(loads)
    return holder if loads[holder] + 1 <= max_load_ratio * (mean + 1) else least
