"""A trained router as plain data: it scores a prompt with P(strong model wins).

The artifact is JSON (feature settings, the non-zero weights, bias, training-data hash, date,
metrics). Loading it never unpickles anything, and scoring is a sparse dot product in plain
Python, without scikit-learn's per-call overhead.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .features import FeatureSettings, featurize

FORMAT = "tollgate-router/1"


@dataclass(frozen=True)
class RouterModel:
    settings: FeatureSettings
    weights: dict[int, float]
    bias: float
    metadata: dict[str, Any] = field(default_factory=dict)

    def score(self, text: str) -> float:
        """P(strong wins | prompt), from 0 to 1."""
        z = self.bias + sum(value * self.weights.get(index, 0.0) for index, value in featurize(text, self.settings).items())
        return 1.0 / (1.0 + math.exp(-max(min(z, 50.0), -50.0)))

    def save(self, path: str | Path) -> None:
        document = {
            "format": FORMAT,
            "features": {"buckets": self.settings.buckets, "ngram_max": self.settings.ngram_max},
            "bias": self.bias,
            "weights": [[index, round(value, 6)] for index, value in sorted(self.weights.items())],
            "metadata": self.metadata,
        }
        Path(path).write_text(json.dumps(document, separators=(",", ":")))


class RouterFileError(ValueError):
    """Not a router artifact this version can read."""


def load(path: str | Path) -> RouterModel:
    try:
        document = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise RouterFileError(f"cannot read router {path}: {err}") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise RouterFileError(f"{path} is not a {FORMAT} artifact")
    try:
        settings = FeatureSettings(**document["features"])
        weights = {int(index): float(value) for index, value in document["weights"]}
        return RouterModel(settings, weights, float(document["bias"]), document.get("metadata", {}))
    except (KeyError, TypeError, ValueError) as err:
        raise RouterFileError(f"{path}: malformed router artifact ({err})") from None
