"""How sure the cheap model's answer looks, for the cascade's decision to escalate (pure).

From the answer's token logprobs: the geometric-mean token probability ``exp(mean logprob)``
and the probability of the least likely token ``exp(min logprob)``, weighted 0.7 and 0.3, so one
wild guess in an otherwise fluent answer still lowers the score. Plain signals override it: an
answer cut off by the token limit, an empty answer, or a refusal scores 0. An answer without
logprobs (an engine that ignores the request) scores on the plain signals alone.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

_REFUSAL = re.compile(
    r"^\W*(i'?m sorry|i am sorry|i apologi[sz]e|sorry, (but )?i|i can'?t|i cannot|i'?m (not able|unable)|"
    r"i am (not able|unable)|i won'?t|as an ai\b)",
    re.I,
)
MEAN_WEIGHT = 0.7


@dataclass(frozen=True)
class Confidence:
    score: float
    reason: str  # logprobs, no_logprobs, truncated, empty, refusal
    mean_logprob: float | None = None
    min_logprob: float | None = None


def assess(text: str, logprobs: list[float], finish_reason: str | None, has_tool_calls: bool = False) -> Confidence:
    """The confidence of one answer (or of its first tokens, for a held-back stream)."""
    mean_lp = sum(logprobs) / len(logprobs) if logprobs else None
    min_lp = min(logprobs) if logprobs else None
    if finish_reason == "length":
        return Confidence(0.0, "truncated", mean_lp, min_lp)
    if not text.strip() and not has_tool_calls and finish_reason is not None:
        return Confidence(0.0, "empty", mean_lp, min_lp)
    if _REFUSAL.match(text[:200]):
        return Confidence(0.0, "refusal", mean_lp, min_lp)
    if mean_lp is None or min_lp is None:
        return Confidence(1.0, "no_logprobs")
    score = MEAN_WEIGHT * math.exp(mean_lp) + (1 - MEAN_WEIGHT) * math.exp(min_lp)
    return Confidence(round(score, 6), "logprobs", mean_lp, min_lp)


def choice_logprobs(choice: dict[str, Any]) -> list[float]:
    """Token logprobs of a chat or legacy-completion choice (whole answer or stream chunk)."""
    logprobs = choice.get("logprobs") or {}
    if not isinstance(logprobs, dict):
        return []
    if isinstance(logprobs.get("content"), list):  # chat
        return [float(t["logprob"]) for t in logprobs["content"] if isinstance(t, dict) and "logprob" in t]
    values = logprobs.get("token_logprobs")  # legacy completions
    return [float(v) for v in values if v is not None] if isinstance(values, list) else []


def choice_text(choice: dict[str, Any]) -> str:
    if "text" in choice:
        return str(choice.get("text") or "")
    message = choice.get("message") or choice.get("delta") or {}
    content = message.get("content")
    return content if isinstance(content, str) else ""


def has_tool_calls(choice: dict[str, Any]) -> bool:
    message = choice.get("message") or choice.get("delta") or {}
    return bool(message.get("tool_calls"))
