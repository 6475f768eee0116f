"""Routing metrics as routing papers compute them: the quality/cost curve, APGR and CPT.

Score every prompt; take the 11 quantiles (0%, 10%, ..., 100%) of the scores as thresholds;
at each, prompts scoring at or above it go to the strong model (strictly above at the maximum,
which gives 0% strong calls). Each threshold gives a point (share of strong calls, mean
quality of the routed answers). APGR is the area between that curve and the weak model's
quality, over the gap (strong - weak), integrated over the share of strong calls; a random
router scores about 0.5. CPT(x%) is the share of strong calls at which quality first reaches
weak + x (strong - weak), interpolated along the curve.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise
from statistics import mean

import numpy as np

from .data import Example


@dataclass(frozen=True)
class Evaluation:
    apgr: float
    cpt50: float  # percent of calls sent to the strong model
    cpt80: float
    weak_quality: float
    strong_quality: float
    curve: list[dict[str, float]]  # threshold, strong_share, quality (and cost when priced)

    def as_dict(self) -> dict[str, object]:
        return {"apgr": self.apgr, "cpt50": self.cpt50, "cpt80": self.cpt80, "weak_quality": self.weak_quality,
                "strong_quality": self.strong_quality, "curve": self.curve}


def routing_curve(scores: list[float], examples: list[Example]) -> list[dict[str, float]]:
    thresholds = np.quantile(np.asarray(scores), np.linspace(0, 1, 11)).tolist()
    top = max(scores)
    points = []
    for threshold in thresholds:
        strong = [(s > threshold) if threshold >= top else (s >= threshold) for s in scores]
        quality = mean(e.strong if to_strong else e.weak for e, to_strong in zip(examples, strong, strict=True))
        points.append({"threshold": threshold, "strong_share": sum(strong) / len(strong), "quality": quality})
    return sorted(points, key=lambda p: (p["strong_share"], p["quality"]))


def apgr(curve: list[dict[str, float]], weak: float, strong: float) -> float:
    if strong <= weak:
        return float("nan")
    area = sum((b["strong_share"] - a["strong_share"]) * ((a["quality"] + b["quality"]) / 2 - weak)
               for a, b in pairwise(curve))
    return area / (strong - weak)


def cpt(curve: list[dict[str, float]], weak: float, strong: float, fraction: float) -> float:
    """Percent of strong calls needed to reach weak + fraction (strong - weak)."""
    target = weak + fraction * (strong - weak)
    for a, b in pairwise(curve):
        if a["quality"] >= target:
            return 100 * a["strong_share"]
        if b["quality"] >= target:
            span = b["quality"] - a["quality"]
            position = (target - a["quality"]) / span if span else 0.0
            return 100 * (a["strong_share"] + position * (b["strong_share"] - a["strong_share"]))
    return 100.0


def evaluate(scores: list[float], examples: list[Example]) -> Evaluation:
    weak, strong = mean(e.weak for e in examples), mean(e.strong for e in examples)
    curve = routing_curve(scores, examples)
    return Evaluation(apgr(curve, weak, strong), cpt(curve, weak, strong, 0.5), cpt(curve, weak, strong, 0.8),
                      weak, strong, curve)
