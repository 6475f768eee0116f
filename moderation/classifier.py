"""An optional classifier the operator trains on labelled JSON Lines (``tollgate moderation train``).

Data: ``{"text": ..., "label": "toxic"}`` per line, with ``"ok"`` (or ``null``) for clean examples.
One logistic regression per label over the hashed n-gram and structural features; the
artifact is plain JSON (never a pickle), scored with a dot product.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

FORMAT = "tollgate-moderation/1"


@dataclass(frozen=True)
class LabelModel:
    weights: dict[int, float]
    bias: float


@dataclass(frozen=True)
class ModerationClassifier:
    labels: dict[str, LabelModel]
    threshold: float = 0.5

    def __call__(self, text: str) -> dict[str, float]:
        """Labels whose probability reaches the threshold."""
        from wire.features import FeatureSettings, featurize

        features = featurize(text, FeatureSettings())
        hits = {}
        for label, model in self.labels.items():
            z = model.bias + sum(value * model.weights.get(index, 0.0) for index, value in features.items())
            probability = 1.0 / (1.0 + math.exp(-max(min(z, 50.0), -50.0)))
            if probability >= self.threshold:
                hits[label] = probability
        return hits

    def save(self, path: str | Path) -> None:
        document = {"format": FORMAT, "labels": {
            label: {"bias": m.bias, "weights": [[i, round(w, 6)] for i, w in sorted(m.weights.items())]}
            for label, m in self.labels.items()}}
        Path(path).write_text(json.dumps(document, separators=(",", ":")))


def load(path: str | Path, threshold: float = 0.5) -> ModerationClassifier:
    document = json.loads(Path(path).read_text())
    if document.get("format") != FORMAT:
        raise ValueError(f"{path} is not a {FORMAT} artifact")
    labels = {label: LabelModel({int(i): float(w) for i, w in spec["weights"]}, float(spec["bias"]))
              for label, spec in document["labels"].items()}
    return ModerationClassifier(labels, threshold)


def read_examples(path: str | Path) -> list[tuple[str, str | None]]:
    examples = []
    for number, line in enumerate(Path(path).read_text().splitlines(), start=1):
        if not line.strip():
            continue
        record = json.loads(line)
        if not isinstance(record, dict) or not isinstance(record.get("text"), str):
            raise ValueError(f"{path}:{number}: needs a string \"text\"")
        label = record.get("label")
        examples.append((record["text"], None if label in (None, "ok", "") else str(label)))
    return examples


def train(examples: list[tuple[str, str | None]], regularization: float = 1.0) -> ModerationClassifier:
    import numpy as np
    from scipy.sparse import csr_matrix
    from sklearn.linear_model import LogisticRegression

    from wire.features import FeatureSettings, featurize

    settings = FeatureSettings()
    rows, cols, values = [], [], []
    for row, (text, _) in enumerate(examples):
        for col, value in featurize(text, settings).items():
            rows.append(row)
            cols.append(col)
            values.append(value)
    matrix = csr_matrix((values, (rows, cols)), shape=(len(examples), settings.size))
    models = {}
    for label in sorted({label for _, label in examples if label}):
        target = np.array([1 if example_label == label else 0 for _, example_label in examples])
        if target.min() == target.max():
            raise ValueError(f"label {label!r} needs positive and negative examples")
        fitted = LogisticRegression(C=regularization, class_weight="balanced", solver="liblinear",
                                    random_state=0).fit(matrix, target)
        coefficients = fitted.coef_[0]
        weights = {int(i): float(coefficients[i]) for i in np.flatnonzero(np.abs(coefficients) > 1e-6)}
        models[label] = LabelModel(weights, float(fitted.intercept_[0]))
    if not models:
        raise ValueError("no labelled examples (every label is \"ok\")")
    return ModerationClassifier(models)
