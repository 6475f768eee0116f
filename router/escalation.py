"""The cascade's escalation threshold from labelled cheap answers: pure functions.

Each labelled answer is the cheap model's confidence in it (``router.confidence``) and whether it
was right. The cascade keeps an answer whose confidence is at least the threshold and escalates
the rest, so escalating the ``k`` least confident answers is a threshold between the k-th and the
(k+1)-th lowest confidence; the midpoint is returned, so that answers not seen yet (scoring
between the two) are not all pushed to one side. A target is met on the data given; how well the
threshold carries over to other prompts is what a held-out set shows (``tollgate router
calibrate-cascade --holdout``).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from .confidence import auroc


@dataclass(frozen=True)
class CheapAnswer:
    confidence: float
    correct: bool
    flagship_correct: float = 1.0  # the flagship's quality on the prompt: measured, or assumed
    cheap_cost_usd: float = 0.0
    flagship_cost_usd: float = 0.0


@dataclass(frozen=True)
class EscalationPoint:
    threshold: float
    escalation_rate: float
    quality: float  # mean correctness of what the client gets: kept cheap answers, else the flagship's
    cost_per_call_usd: float  # the cheap call always, the flagship call when escalated


def outcome(threshold: float, answers: Sequence[CheapAnswer]) -> EscalationPoint:
    """What a threshold does on these answers."""
    escalated = [a.confidence < threshold for a in answers]
    n = len(answers)
    quality = sum(a.flagship_correct if up else float(a.correct) for a, up in zip(answers, escalated, strict=True)) / n
    cost = sum(a.cheap_cost_usd + (a.flagship_cost_usd if up else 0.0) for a, up in zip(answers, escalated, strict=True)) / n
    return EscalationPoint(threshold, sum(escalated) / n, quality, cost)


def _cut(k: int, ordered: list[float]) -> float:
    """The threshold escalating the ``k`` lowest of ``ordered`` (ascending), halfway to the next."""
    if k <= 0:
        return 0.0
    if k >= len(ordered):
        return 1.0
    return (ordered[k - 1] + ordered[k]) / 2


def _candidates(answers: Sequence[CheapAnswer]) -> list[tuple[int, float]]:
    """(k, threshold) for every k whose cut does not split tied confidences."""
    ordered = sorted(a.confidence for a in answers)
    return [(k, _cut(k, ordered)) for k in range(len(ordered) + 1)
            if k in (0, len(ordered)) or ordered[k - 1] < ordered[k]]


def for_escalation_rate(rate: float, answers: Sequence[CheapAnswer]) -> EscalationPoint:
    """The threshold escalating at most ``rate`` of the answers (as close to it as ties allow)."""
    if not 0.0 <= rate <= 1.0:
        raise ValueError("the escalation rate must be between 0 and 1")
    _check(answers)
    allowed = rate * len(answers) + 1e-9
    k, threshold = max((c for c in _candidates(answers) if c[0] <= allowed), key=lambda c: c[0])
    return outcome(threshold, answers)


def for_min_quality(quality: float, answers: Sequence[CheapAnswer]) -> EscalationPoint:
    """The fewest escalations whose quality reaches ``quality``."""
    _check(answers)
    for _, threshold in _candidates(answers):
        point = outcome(threshold, answers)
        if point.quality >= quality - 1e-12:
            return point
    best = outcome(1.0 + 1e-9, answers)
    raise ValueError(f"no threshold reaches quality {quality:g} (escalating everything gives {best.quality:.3f})")


def for_max_cost(max_cost_usd: float, answers: Sequence[CheapAnswer]) -> EscalationPoint:
    """The most escalations (the best quality this ordering buys) within ``max_cost_usd`` per call."""
    _check(answers)
    within = [outcome(t, answers) for _, t in _candidates(answers)]
    affordable = [p for p in within if p.cost_per_call_usd <= max_cost_usd + 1e-15]
    if not affordable:
        raise ValueError(f"even escalating nothing costs {within[0].cost_per_call_usd:g} USD per call, "
                         f"above the {max_cost_usd:g} asked for")
    return max(affordable, key=lambda p: (p.escalation_rate, -p.threshold))


def curve(answers: Sequence[CheapAnswer], points: int = 11) -> list[EscalationPoint]:
    """The trade-off at evenly spaced escalation rates, 0 to 100%."""
    return [for_escalation_rate(i / (points - 1), answers) for i in range(points)]


def separation(answers: Sequence[CheapAnswer]) -> float:
    """AUROC of confidence for right against wrong cheap answers (0.5: no better than chance)."""
    return auroc([a.confidence for a in answers], [a.correct for a in answers])


def split(answers: Sequence[CheapAnswer], holdout: float, seed: int = 0) -> tuple[list[CheapAnswer], list[CheapAnswer]]:
    """A random (calibration, held-out) split, ``holdout`` of the answers held out."""
    if not 0.0 < holdout < 1.0:
        raise ValueError("--holdout must be between 0 and 1")
    shuffled = list(answers)
    random.Random(seed).shuffle(shuffled)
    cut = round(len(shuffled) * (1 - holdout))
    if cut < 1 or cut >= len(shuffled):
        raise ValueError("too few answers to hold some out")
    return shuffled[:cut], shuffled[cut:]


def _check(answers: Sequence[CheapAnswer]) -> None:
    if not answers:
        raise ValueError("no labelled answers")
