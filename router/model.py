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

import numpy as np

from wire.features import STRUCTURAL, FeatureSettings, clipped, ngram_counts, structural, tokens_of

FORMAT = "tollgate-router/3"  # 2: integer-mixed bigram hashes, clipped long prompts; 3: numbers and sentences


@dataclass(frozen=True)
class RouterModel:
    settings: FeatureSettings
    weights: dict[int, float]
    bias: float
    metadata: dict[str, Any] = field(default_factory=dict)
    dense: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # A dense copy of the weights (2 MB) turns scoring into one gather and one dot product.
        dense = np.zeros(self.settings.size, dtype=np.float64)
        for index, value in self.weights.items():
            dense[index] = value
        object.__setattr__(self, "dense", dense)

    def score(self, text: str) -> float:
        """P(strong wins | prompt), from 0 to 1."""
        kept = clipped(text, self.settings)
        tokens = tokens_of(kept)
        buckets, values = ngram_counts(tokens, self.settings)
        z = self.bias + float(self.dense[buckets] @ values)
        base = self.settings.buckets
        for offset, value in enumerate(structural(kept, tokens, len(text))):
            z += value * self.dense[base + offset]
        return 1.0 / (1.0 + math.exp(-max(min(z, 50.0), -50.0)))

    def save(self, path: str | Path) -> None:
        document = {
            "format": FORMAT,
            "features": {"buckets": self.settings.buckets, "ngram_max": self.settings.ngram_max,
                         "head_chars": self.settings.head_chars, "tail_chars": self.settings.tail_chars,
                         "structural": list(STRUCTURAL)},
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
    features = document.get("features")
    if not isinstance(features, dict) or features.get("structural") != list(STRUCTURAL):
        raise RouterFileError(f"{path} was trained with other structural features (or none); train it again")
    try:
        settings = FeatureSettings(**{k: v for k, v in features.items() if k != "structural"})
        weights = {int(index): float(value) for index, value in document["weights"]}
        return RouterModel(settings, weights, float(document["bias"]), document.get("metadata", {}))
    except (KeyError, TypeError, ValueError) as err:
        raise RouterFileError(f"{path}: malformed router artifact ({err})") from None
