"""Choosing a threshold for a target: a share of strong calls, a cost per call, or a quality.

Pure functions over scored, labelled prompts. Prompts scoring at or above the threshold go to the
strong model (the request path's rule), so sending the top ``k`` scores to the strong model is the
threshold ``score[k-1]``. Ties at the cut can send a few more than ``k``; the reported share is
always what the returned threshold really does on the data.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from .data import Example


@dataclass(frozen=True)
class Calibration:
    threshold: float
    strong_share: float
    quality: float
    cost_per_call_usd: float | None


def _outcome(threshold: float, scores: list[float], examples: list[Example], costs: tuple[float, float] | None) -> Calibration:
    strong = [s >= threshold for s in scores]
    share = sum(strong) / len(strong)
    quality = sum(e.strong if to_strong else e.weak for e, to_strong in zip(examples, strong, strict=True)) / len(examples)
    cost = None if costs is None else (1 - share) * costs[0] + share * costs[1]
    return Calibration(threshold, share, quality, cost)


def _threshold_for_top(k: int, ordered: list[float]) -> float:
    """The threshold that sends the ``k`` highest scores (and any tied with the k-th) to the strong model."""
    if k <= 0:
        return min(1.0, ordered[0] + 1e-9) if ordered[0] < 1.0 else 1.0
    return ordered[k - 1]


def for_strong_share(share: float, scores: list[float], examples: list[Example],
                     costs: tuple[float, float] | None = None) -> Calibration:
    """The threshold sending at most ``share`` of the prompts to the strong model."""
    if not 0.0 <= share <= 1.0:
        raise ValueError("the strong-call share must be between 0 and 1")
    ordered = sorted(scores, reverse=True)
    k = int(share * len(ordered) + 1e-9)
    while k > 0 and sum(s >= ordered[k - 1] for s in ordered) > share * len(ordered) + 1e-9:
        k -= 1  # ties at the cut would overshoot the share: cut higher
    return _outcome(_threshold_for_top(k, ordered), scores, examples, costs)


def for_max_cost(max_cost_usd: float, costs: tuple[float, float], scores: list[float],
                 examples: list[Example]) -> Calibration:
    """The most strong calls whose mean cost per call stays within ``max_cost_usd``."""
    cheap, strong = costs
    if max_cost_usd < cheap:
        raise ValueError(f"even all-cheap costs {cheap:g} USD per call, above the {max_cost_usd:g} asked for")
    share = 1.0 if strong <= cheap else min((max_cost_usd - cheap) / (strong - cheap), 1.0)
    return for_strong_share(share, scores, examples, costs)


def for_min_quality(quality: float, scores: list[float], examples: list[Example],
                    costs: tuple[float, float] | None = None) -> Calibration:
    """The fewest strong calls (the highest threshold) whose routed quality reaches ``quality``."""
    ordered = sorted(range(len(scores)), key=lambda i: scores[i], reverse=True)
    total = sum(e.weak for e in examples)
    needed = quality * len(examples)
    if total >= needed - 1e-12:
        return _outcome(_threshold_for_top(0, [scores[i] for i in ordered]), scores, examples, costs)
    for rank, index in enumerate(ordered, start=1):
        total += examples[index].strong - examples[index].weak
        if total >= needed - 1e-12 and (rank == len(ordered) or scores[ordered[rank]] < scores[index]):
            return _outcome(scores[index], scores, examples, costs)
    raise ValueError(f"no threshold reaches quality {quality:g} (all-strong gives {sum(e.strong for e in examples) / len(examples):.3f})")


def share_at_or_above(scores: list[float], thresholds: list[float]) -> list[float]:
    """For each threshold, the share of ``scores`` at or above it: on live router scores, the share
    of calls a global threshold would send to the flagship (the curve the console draws)."""
    ordered = sorted(scores)
    return [(len(ordered) - bisect.bisect_left(ordered, t)) / len(ordered) if ordered else 0.0 for t in thresholds]
