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
