"""Fitting a router: logistic regression on hashed n-grams and structural features.

scikit-learn fits the model; the result is copied into a plain-data ``RouterModel`` so that
nothing pickled is ever saved or loaded, and scoring does not go through scikit-learn.
"""

from __future__ import annotations

import datetime
import hashlib
import random

import numpy as np
from scipy.sparse import csr_matrix
from sklearn.linear_model import LogisticRegression

from .data import Example
from .evaluate import evaluate
from .features import FeatureSettings, featurize
from .model import RouterModel


def _matrix(examples: list[Example], settings: FeatureSettings) -> csr_matrix:
    rows, cols, values = [], [], []
    for row, example in enumerate(examples):
        for col, value in featurize(example.text, settings).items():
            rows.append(row)
            cols.append(col)
            values.append(value)
    return csr_matrix((values, (rows, cols)), shape=(len(examples), settings.size))


def data_hash(examples: list[Example]) -> str:
    digest = hashlib.sha256()
    for e in examples:
        digest.update(f"{e.text}\x00{e.weak}\x00{e.strong}\n".encode())
    return digest.hexdigest()


def fit(examples: list[Example], settings: FeatureSettings | None = None, regularization: float = 1.0) -> RouterModel:
    settings = settings or FeatureSettings()
    labels = np.array([1 if e.strong_wins else 0 for e in examples])
    if labels.min() == labels.max():
        raise ValueError("the data needs prompts where the strong model wins and prompts where it does not")
    classifier = LogisticRegression(C=regularization, class_weight="balanced", max_iter=2000, solver="liblinear",
                                    random_state=0)
    classifier.fit(_matrix(examples, settings), labels)
    coefficients = classifier.coef_[0]
    weights = {int(i): float(coefficients[i]) for i in np.flatnonzero(np.abs(coefficients) > 1e-6)}
    model = RouterModel(settings, weights, float(classifier.intercept_[0]))
    in_sample = evaluate([model.score(e.text) for e in examples], examples)
    metadata = {
        "trained_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "examples": len(examples),
        "strong_win_rate": float(labels.mean()),
        "data_sha256": data_hash(examples),
        "regularization": regularization,
        "in_sample": {"apgr": in_sample.apgr, "cpt50": in_sample.cpt50, "cpt80": in_sample.cpt80},
    }
    return RouterModel(settings, weights, model.bias, metadata)


def cross_validated_scores(examples: list[Example], folds: int, seed: int = 0, **fit_options: object) -> list[float]:
    """Each prompt scored by a router trained on the other folds."""
    if folds < 2 or folds > len(examples):
        raise ValueError(f"--cv needs 2 to {len(examples)} folds")
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    scores = [0.0] * len(examples)
    for fold in range(folds):
        held = set(order[fold::folds])
        model = fit([e for i, e in enumerate(examples) if i not in held], **fit_options)
        for i in held:
            scores[i] = model.score(examples[i].text)
    return scores
