"""Fitting a router: logistic regression on hashed n-grams, structural features and word vectors.

scikit-learn fits the model; the result is copied into a plain-data ``RouterModel`` so that
nothing pickled is ever saved or loaded, and scoring does not go through scikit-learn.

Two choices depend on the data, so by default both are made by cross-validation on the training
data itself, on the metric the router is judged by (APGR): how strongly to regularize (a few
hundred ledger labels want much more than tens of thousands of benchmark prompts), and how much
weight the word vectors get beside the n-grams (0 leaves them out: on some data they only add
noise). ``cross_validated_scores`` makes them again inside every fold, so its estimate stays honest.
"""

from __future__ import annotations

import datetime
import hashlib
import math
import random
from collections.abc import Callable
from dataclasses import replace

import numpy as np
from scipy.sparse import csr_matrix, diags
from sklearn.linear_model import LogisticRegression

from .data import Example
from .evaluate import evaluate
from .features import RouterFeatures, feature_row, prompt_features
from .model import RouterModel

REGULARIZATION_GRID = (0.1, 0.3, 1.0, 3.0, 10.0)  # values of C tried when none is given
EMBEDDING_GRID = (0.0, 1.0)  # word-vector scales tried when none is given (0: n-grams alone)
# Word vectors are kept only when they beat n-grams alone by this much cross-validated APGR: a gain
# smaller than that is within the noise of choosing among several candidates on the same folds.
EMBEDDING_MARGIN = 0.005
DEFAULT_REGULARIZATION = 1.0  # when the data is too small to choose
DEFAULT_EMBEDDING = 0.0
SELECTION_FOLDS = 3
MIN_WINS_TO_SELECT = 2 * SELECTION_FOLDS  # each inner training set needs wins and losses


def feature_matrix(examples: list[Example], features: RouterFeatures) -> csr_matrix:
    """One row per example; with ``features.hints`` the example's ``domain`` is its task hint."""
    rows, cols, values = [], [], []
    for row, example in enumerate(examples):
        columns, numbers = feature_row(prompt_features(example.text, _hint(example, features), features), features)
        rows.append(np.full(len(columns), row))
        cols.append(columns)
        values.append(numbers)
    return csr_matrix((np.concatenate(values), (np.concatenate(rows), np.concatenate(cols))),
                      shape=(len(examples), features.size))


def _with_scale(matrix: csr_matrix, features: RouterFeatures, scale: float) -> csr_matrix:
    """A matrix built with ``features`` with its word-vector columns at ``scale`` instead (0: dropped)."""
    built = features.embedding_scale
    if not built or scale == built:
        return matrix
    if scale == 0.0:
        return matrix[:, : features.embedding_start]
    column_scale = np.ones(matrix.shape[1])
    column_scale[features.embedding_start :] = scale / built
    return (matrix @ diags(column_scale)).tocsr()


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


def choose(matrix: csr_matrix, examples: list[Example], features: RouterFeatures, regularizations: tuple[float, ...],
           scales: tuple[float, ...], seed: int = 0) -> tuple[float, float, dict[str, float]]:
    """The (C, word-vector scale) with the best 3-fold cross-validated APGR, and every pair's APGR.

    Word vectors must win by ``EMBEDDING_MARGIN``; ties go to the C nearest the default. Data with
    too few wins to split gets the defaults.
    """
    labels = _labels(examples)
    default = (regularizations[0] if len(regularizations) == 1 else DEFAULT_REGULARIZATION,
               scales[0] if len(scales) == 1 else DEFAULT_EMBEDDING)
    if min(int(labels.sum()), int(len(labels) - labels.sum())) < MIN_WINS_TO_SELECT:
        return default[0], default[1], {}
    results: dict[tuple[float, float], float] = {}
    for scale in scales:
        scaled = _with_scale(matrix, features, scale)
        for value in regularizations:
            results[(value, scale)] = evaluate(_held_out_scores(scaled, labels, SELECTION_FOLDS, value, seed).tolist(),
                                               examples).apgr
    valid = {pair: a for pair, a in results.items() if not math.isnan(a)}
    if not valid:
        return default[0], default[1], {}
    def best_of(pairs: list[tuple[float, float]]) -> tuple[float, float]:
        return max(pairs, key=lambda p: (round(valid[p], 4), -abs(math.log(p[0] / DEFAULT_REGULARIZATION))))

    plain = [p for p in valid if p[1] == 0.0]
    best = best_of(list(valid))
    if plain and best[1] != 0.0 and valid[best] < valid[best_of(plain)] + EMBEDDING_MARGIN:
        best = best_of(plain)
    return best[0], best[1], {f"C={c:g},vectors={s:g}": round(a, 4) for (c, s), a in results.items()}


def _fit_matrix(matrix: csr_matrix, examples: list[Example], features: RouterFeatures,
                regularization: float | None, embedding_scale: float | None) -> RouterModel:
    """``matrix`` was built with ``features``."""
    labels = _labels(examples)
    if labels.min() == labels.max():
        raise ValueError("the data needs prompts where the strong model wins and prompts where it does not")
    regularizations = REGULARIZATION_GRID if regularization is None else (regularization,)
    scales = (EMBEDDING_GRID if embedding_scale is None else (embedding_scale,)) if features.embedding_scale else (0.0,)
    selection: dict[str, float] = {}
    if len(regularizations) * len(scales) > 1:
        regularization, embedding_scale, selection = choose(matrix, examples, features, regularizations, scales)
    else:
        regularization, embedding_scale = regularizations[0], scales[0]
    chosen = replace(features, embedding_scale=embedding_scale)
    classifier = _classifier(_with_scale(matrix, features, embedding_scale), labels, regularization)
    coefficients = classifier.coef_[0]
    weights = {int(i): float(coefficients[i]) for i in np.flatnonzero(np.abs(coefficients) > 1e-6)}
    metadata = {
        "trained_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "examples": len(examples),
        "strong_win_rate": float(labels.mean()),
        "data_sha256": data_hash(examples),
        "regularization": regularization,
        "word_vectors": embedding_scale,
        "selection_cv_apgr": selection,
    }
    return RouterModel(chosen, weights, float(classifier.intercept_[0]), metadata)


def candidate_features(hints: bool = False, word_vectors: bool = True) -> RouterFeatures:
    """The feature space training searches: word vectors (scale 1, chosen later) unless turned off."""
    return RouterFeatures(embedding_scale=1.0 if word_vectors else 0.0, hints=hints)


def _hint(example: Example, features: RouterFeatures) -> str | None:
    return example.domain if features.hints else None


def fit(examples: list[Example], features: RouterFeatures | None = None, regularization: float | None = None,
        embedding_scale: float | None = None) -> RouterModel:
    """A router for these examples; ``None`` chooses C (and the word vectors' scale) by cross-validation."""
    features = features or candidate_features()
    model = _fit_matrix(feature_matrix(examples, features), examples, features, regularization, embedding_scale)
    in_sample = evaluate([model.score(e.text, _hint(e, features)) for e in examples], examples)
    model.metadata["in_sample"] = {"apgr": in_sample.apgr, "cpt50": in_sample.cpt50, "cpt80": in_sample.cpt80}
    model.metadata["uses_task_hints"] = features.hints
    return model


def cross_validated_scores(examples: list[Example], folds: int, seed: int = 0, features: RouterFeatures | None = None,
                           regularization: float | None = None, embedding_scale: float | None = None,
                           on_fold: Callable[[int], None] | None = None) -> list[float]:
    """Each prompt scored by a router trained on the other folds (making its choices on those folds
    only); ``on_fold(1)`` after each fold, for a progress bar."""
    if folds < 2 or folds > len(examples):
        raise ValueError(f"--cv needs 2 to {len(examples)} folds")
    features = features or candidate_features()
    matrix = feature_matrix(examples, features)
    scores = [0.0] * len(examples)
    for train, held in _splits(len(examples), folds, seed):
        model = _fit_matrix(matrix[train], [examples[i] for i in train], features, regularization, embedding_scale)
        for i in held.tolist():
            scores[i] = model.score(examples[i].text, _hint(examples[i], features))
        if on_fold is not None:
            on_fold(1)
    return scores
