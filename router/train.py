"""Fitting a router: logistic regression on hashed n-grams and structural features.

scikit-learn fits the model; the result is copied into a plain-data ``RouterModel`` so that
nothing pickled is ever saved or loaded, and scoring does not go through scikit-learn.

How strongly to regularize depends on the data (a few hundred ledger labels want much more than
tens of thousands of benchmark prompts), so by default it is chosen by cross-validation on the
training data itself, on the metric the router is judged by (APGR).
"""

from __future__ import annotations

import datetime
import hashlib
import math
import random
from collections.abc import Callable

import numpy as np
from scipy.sparse import csr_matrix
from sklearn.linear_model import LogisticRegression

from wire.features import FeatureSettings, featurize

from .data import Example
from .evaluate import evaluate
from .model import RouterModel

REGULARIZATION_GRID = (0.1, 0.3, 1.0, 3.0, 10.0)  # values of C tried when none is given
DEFAULT_REGULARIZATION = 1.0  # when the data is too small to choose
SELECTION_FOLDS = 3
MIN_WINS_TO_SELECT = 2 * SELECTION_FOLDS  # each inner training set needs wins and losses


def feature_matrix(examples: list[Example], settings: FeatureSettings) -> csr_matrix:
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


def _labels(examples: list[Example]) -> np.ndarray:
    return np.array([1 if e.strong_wins else 0 for e in examples])


def _classifier(matrix: csr_matrix, labels: np.ndarray, regularization: float) -> LogisticRegression:
    classifier = LogisticRegression(C=regularization, class_weight="balanced", max_iter=2000, solver="liblinear",
                                    random_state=0)
    return classifier.fit(matrix, labels)


def _splits(count: int, folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(training rows, held-out rows) of each fold, from one seeded shuffle."""
    order = list(range(count))
    random.Random(seed).shuffle(order)
    helds = [np.array(sorted(order[fold::folds])) for fold in range(folds)]
    return [(np.setdiff1d(np.arange(count), held), held) for held in helds]


def _held_out_scores(matrix: csr_matrix, labels: np.ndarray, folds: int, regularization: float, seed: int) -> np.ndarray:
    """Decision values of every row from a classifier fitted on the other folds."""
    scores = np.zeros(matrix.shape[0])
    for train, held in _splits(matrix.shape[0], folds, seed):
        if labels[train].min() == labels[train].max():
            raise ValueError("a fold has no prompt where the strong model wins (or none where it does not)")
        scores[held] = _classifier(matrix[train], labels[train], regularization).decision_function(matrix[held])
    return scores


def choose_regularization(matrix: csr_matrix, examples: list[Example], seed: int = 0) -> tuple[float, dict[str, float]]:
    """The C of the grid with the best cross-validated APGR, and every C's APGR.

    Ties go to the value nearest the default. Data with too few wins to split gets the default.
    """
    labels = _labels(examples)
    if min(int(labels.sum()), int(len(labels) - labels.sum())) < MIN_WINS_TO_SELECT:
        return DEFAULT_REGULARIZATION, {}
    results = {}
    for value in REGULARIZATION_GRID:
        scores = _held_out_scores(matrix, labels, SELECTION_FOLDS, value, seed)
        results[value] = evaluate(scores.tolist(), examples).apgr
    valid = {c: a for c, a in results.items() if not math.isnan(a)}
    if not valid:
        return DEFAULT_REGULARIZATION, {}
    best = max(valid, key=lambda c: (round(valid[c], 4), -abs(math.log(c / DEFAULT_REGULARIZATION))))
    return best, {str(c): round(a, 4) for c, a in results.items()}


def _fit_matrix(matrix: csr_matrix, examples: list[Example], settings: FeatureSettings,
                regularization: float | None) -> RouterModel:
    labels = _labels(examples)
    if labels.min() == labels.max():
        raise ValueError("the data needs prompts where the strong model wins and prompts where it does not")
    selection: dict[str, float] = {}
    if regularization is None:
        regularization, selection = choose_regularization(matrix, examples)
    classifier = _classifier(matrix, labels, regularization)
    coefficients = classifier.coef_[0]
    weights = {int(i): float(coefficients[i]) for i in np.flatnonzero(np.abs(coefficients) > 1e-6)}
    metadata = {
        "trained_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "examples": len(examples),
        "strong_win_rate": float(labels.mean()),
        "data_sha256": data_hash(examples),
        "regularization": regularization,
        "regularization_cv_apgr": selection,
    }
    return RouterModel(settings, weights, float(classifier.intercept_[0]), metadata)


def fit(examples: list[Example], settings: FeatureSettings | None = None,
        regularization: float | None = None) -> RouterModel:
    """A router for these examples; ``regularization=None`` chooses C by cross-validation."""
    settings = settings or FeatureSettings()
    model = _fit_matrix(feature_matrix(examples, settings), examples, settings, regularization)
    in_sample = evaluate([model.score(e.text) for e in examples], examples)
    model.metadata["in_sample"] = {"apgr": in_sample.apgr, "cpt50": in_sample.cpt50, "cpt80": in_sample.cpt80}
    return model


def cross_validated_scores(examples: list[Example], folds: int, seed: int = 0, settings: FeatureSettings | None = None,
                           regularization: float | None = None,
                           on_fold: Callable[[int], None] | None = None) -> list[float]:
    """Each prompt scored by a router trained on the other folds (choosing its C on those folds
    only); ``on_fold(1)`` after each fold, for a progress bar."""
    if folds < 2 or folds > len(examples):
        raise ValueError(f"--cv needs 2 to {len(examples)} folds")
    settings = settings or FeatureSettings()
    matrix = feature_matrix(examples, settings)
    scores = [0.0] * len(examples)
    for train, held in _splits(len(examples), folds, seed):
        model = _fit_matrix(matrix[train], [examples[i] for i in train], settings, regularization)
        for i in held.tolist():
            scores[i] = model.score(examples[i].text)
        if on_fold is not None:
            on_fold(1)
    return scores
