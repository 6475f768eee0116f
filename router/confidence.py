"""How sure the cheap model's answer looks, for the cascade's decision to escalate (pure).

From the answer's token logprobs, by one of ``SCORERS`` (``docs/router.md`` reports how well each
separates right from wrong answers of a real small model): by default the geometric-mean token
probability ``exp(mean logprob)`` and the probability of the least likely token ``exp(min
logprob)``, weighted 0.7 and 0.3, so one wild guess in an otherwise fluent answer still lowers the
score. Plain signals override it: an empty answer or a refusal scores 0, and so does an answer cut
off by a token limit the client did not set (the engine ran out of room: the flagship may not). An
answer cut at the client's own ``max_tokens`` is judged by its logprobs like any other: the
flagship's would be cut at the same length. An answer without logprobs (an engine that ignores the
request) scores on the plain signals alone.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

_REFUSAL = re.compile(
    r"^\W*(i'?m sorry|i am sorry|i apologi[sz]e|sorry, (but )?i|i can'?t|i cannot|i'?m (not able|unable)|"
    r"i am (not able|unable)|i won'?t|as an ai\b)",
    re.I,
)
MEAN_WEIGHT = 0.7
TAIL_TOKENS = 16


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


SCORERS: dict[str, Callable[[Sequence[float]], float]] = {
    # 0.7 exp(mean) + 0.3 exp(min): fluent overall, and no wild guess anywhere
    "mean_min": lambda lps: MEAN_WEIGHT * math.exp(_mean(lps)) + (1 - MEAN_WEIGHT) * math.exp(min(lps)),
    "mean": lambda lps: math.exp(_mean(lps)),  # the geometric-mean token probability (length-normalised)
    "min": lambda lps: math.exp(min(lps)),  # the least likely token
    "tail": lambda lps: math.exp(_mean(lps[-TAIL_TOKENS:])),  # the last tokens, where short answers say it
    "head": lambda lps: math.exp(_mean(lps[:TAIL_TOKENS])),  # the first tokens: what a held-back stream sees
}
DEFAULT_SCORER = "mean_min"


@dataclass(frozen=True)
class Confidence:
    score: float
    reason: str  # logprobs, no_logprobs, truncated, empty, refusal
    mean_logprob: float | None = None
    min_logprob: float | None = None


def assess(text: str, logprobs: Sequence[float], finish_reason: str | None, has_tool_calls: bool = False,
           capped_by_client: bool = False, scorer: str = DEFAULT_SCORER) -> Confidence:
    """The confidence of one answer (or of its first tokens, for a held-back stream)."""
    mean_lp = _mean(logprobs) if logprobs else None
    min_lp = min(logprobs) if logprobs else None
    if finish_reason == "length" and not capped_by_client:
        return Confidence(0.0, "truncated", mean_lp, min_lp)
    if not text.strip() and not has_tool_calls and finish_reason is not None:
        return Confidence(0.0, "empty", mean_lp, min_lp)
    if _REFUSAL.match(text[:200]):
        return Confidence(0.0, "refusal", mean_lp, min_lp)
    if not logprobs:
        return Confidence(1.0, "no_logprobs")
    return Confidence(round(SCORERS[scorer](logprobs), 6), "logprobs", mean_lp, min_lp)


def auroc(scores: Sequence[float], correct: Sequence[bool]) -> float:
    """How well a confidence score separates right answers from wrong ones: the chance that a random
    right answer scores above a random wrong one (ties count half). 0.5 is no better than chance."""
    pairs = sorted(zip(scores, correct, strict=True))
    right = sum(correct)
    wrong = len(pairs) - right
    if not right or not wrong:
        return float("nan")
    rank_sum, index = 0.0, 0
    while index < len(pairs):
        end = index
        while end + 1 < len(pairs) and pairs[end + 1][0] == pairs[index][0]:
            end += 1
        average_rank = (index + end) / 2 + 1
        rank_sum += average_rank * sum(1 for _, ok in pairs[index : end + 1] if ok)
        index = end + 1
    return (rank_sum - right * (right + 1) / 2) / (right * wrong)
