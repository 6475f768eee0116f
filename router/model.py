"""A trained router as plain data: it scores a prompt with P(strong model wins).

The artifact is JSON (feature settings, the non-zero weights, bias, training-data hash, date,
metrics). Loading it never unpickles anything, and scoring is a gather and a dot product in numpy,
without scikit-learn's per-call overhead.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from wire.features import STRUCTURAL, FeatureSettings

from .embedding import TABLE_NAME, word_vectors
from .features import Featurized, RouterFeatures, prompt_features

# 3: numbers and sentences; 4: optional word vectors and task hints (a /3 artifact is read as /4 without them)
FORMAT = "tollgate-router/4"
READABLE = ("tollgate-router/3", FORMAT)


@dataclass(frozen=True)
class RouterModel:
    features: RouterFeatures
    weights: dict[int, float]
    bias: float
    metadata: dict[str, Any] = field(default_factory=dict)
    dense: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # A dense copy of the weights (2 MB) turns scoring into one gather and one dot product.
        dense = np.zeros(self.features.size, dtype=np.float64)
        for index, value in self.weights.items():
            dense[index] = value
        object.__setattr__(self, "dense", dense)

    def score(self, text: str, hint: str | None = None) -> float:
        """P(strong wins | prompt[, task hint]), from 0 to 1."""
        return self.score_featurized(prompt_features(text, hint, self.features))

    def score_featurized(self, featurized: Featurized) -> float:
        """The same from features already taken with ``self.features`` (a shadow router with the
        same features scores the serving router's, instead of taking them again)."""
        z = self.bias + float(self.dense[featurized.columns] @ featurized.values)
        if featurized.word_rows is not None:
            vectors = word_vectors().prompt_vectors(featurized.word_rows, featurized.last_block)
            start = self.features.embedding_start
            z += self.features.embedding_scale * float(self.dense[start:] @ vectors)
        return 1.0 / (1.0 + math.exp(-max(min(z, 50.0), -50.0)))

    def document(self) -> dict[str, Any]:
        settings = self.features.settings
        features: dict[str, Any] = {
            "buckets": settings.buckets, "ngram_max": settings.ngram_max, "head_chars": settings.head_chars,
            "tail_chars": settings.tail_chars, "structural": list(STRUCTURAL), "hints": self.features.hints,
        }
        if self.features.embedding_scale:
            features["embedding"] = {"table": TABLE_NAME, "scale": self.features.embedding_scale}
        return {
            "format": FORMAT,
            "features": features,
            "bias": self.bias,
            "weights": [[index, round(value, 6)] for index, value in sorted(self.weights.items())],
            "metadata": _finite(self.metadata),
        }

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.document(), separators=(",", ":")))


def _finite(value: Any) -> Any:
    """``value`` with NaN and infinities as null: the artifact stays strict JSON (an APGR is NaN where
    a fold had no wins, and the admin API, like any JSON parser, refuses NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


class RouterFileError(ValueError):
    """Not a router artifact this version can read."""


def parse(document: Any, source: str = "router") -> RouterModel:
    """A router from its JSON document (as saved, or as stored in Redis by `router deploy`)."""
    if not isinstance(document, dict) or document.get("format") not in READABLE:
        raise RouterFileError(f"{source} is not a {FORMAT} artifact")
    features = document.get("features")
    if not isinstance(features, dict) or features.get("structural") != list(STRUCTURAL):
        raise RouterFileError(f"{source} was trained with other structural features (or none); train it again")
    embedding = features.get("embedding") or {}
    if embedding and embedding.get("table") != TABLE_NAME:
        raise RouterFileError(f"{source} needs word vectors {embedding.get('table')!r}; this version ships {TABLE_NAME!r}")
    try:
        settings = FeatureSettings(**{k: features[k] for k in ("buckets", "ngram_max", "head_chars", "tail_chars")})
        _check_settings(settings)
        scale = float(embedding.get("scale", 0.0))
        if not 0.0 <= scale <= 100.0:
            raise ValueError("the word-vector scale must be between 0 and 100")
        if not isinstance(document.get("metadata", {}), dict):
            raise ValueError("metadata must be an object")
        spec = RouterFeatures(settings, scale, bool(features.get("hints", False)))
        weights = {int(index): float(value) for index, value in document["weights"]}
        if any(not 0 <= index < spec.size for index in weights):
            raise ValueError("a weight's index is outside the feature space")
        return RouterModel(spec, weights, float(document["bias"]), document.get("metadata", {}))
    except (KeyError, TypeError, ValueError) as err:
        raise RouterFileError(f"{source}: malformed router artifact ({err})") from None


def _check_settings(settings: FeatureSettings) -> None:
    """Bounds that keep a hand-made or hostile artifact from taking a worker's memory or time
    (the dense weight array has one entry per bucket)."""
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in
               (settings.buckets, settings.ngram_max, settings.head_chars, settings.tail_chars)):
        raise ValueError("feature settings must be integers")
    if not (1 << 10 <= settings.buckets <= 1 << 22 and 1 <= settings.ngram_max <= 4
            and 0 <= settings.head_chars <= 100_000 and 0 <= settings.tail_chars <= 100_000):
        raise ValueError("feature settings out of range (buckets 2^10 to 2^22, n-grams 1 to 4, at most 100,000 characters)")


def load(path: str | Path) -> RouterModel:
    try:
        document = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise RouterFileError(f"cannot read router {path}: {err}") from None
    return parse(document, str(path))
