"""The router's view of a prompt: one function used by training and by the request path alike, so
the two can never featurize differently.

Columns, in order: hashed word n-grams (L2-normalized; the task hint, when the router uses hints,
is one more bucket of value 1), the structural signals (wire.features.STRUCTURAL), and, when the
router uses word vectors, the direction of the prompt's mean word vector and of its last block's,
times a scale (router/embedding.py).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from wire.features import STRUCTURAL, FeatureSettings, clipped, ngram_counts, structural, tokens_of

from .embedding import word_vectors

# What a router trained now reads of a long prompt: its first 256 and last 768 characters (saved
# routers keep the window they were trained with). Reading 1,024 characters rather than 2,048 takes
# a fifth to a third off the decision on prompts of about 2,000 characters, for the same quality on
# every file of the real data (three or five shuffles each; docs/router.md): on RouterBench's few-shot
# prompts, as on chat turns, what decides is the question at the end and what kind of request the
# start says it is, not the middle.
READ_WINDOW = FeatureSettings(head_chars=256, tail_chars=768)


@dataclass(frozen=True)
class RouterFeatures:
    settings: FeatureSettings = READ_WINDOW
    embedding_scale: float = 0.0  # 0: no word vectors
    hints: bool = False  # whether the task hint is a feature

    @property
    def embedding_start(self) -> int:
        return self.settings.buckets + len(STRUCTURAL)

    @property
    def size(self) -> int:
        return self.embedding_start + (word_vectors().size if self.embedding_scale else 0)


@dataclass(frozen=True, slots=True)
class Featurized:
    columns: np.ndarray  # n-gram buckets (and the hint's), then the structural columns
    values: np.ndarray
    word_rows: np.ndarray | None  # each token's row in the word table (None: no word vectors)
    last_block: int  # how many of the tokens are the last block's


def hint_bucket(hint: str, settings: FeatureSettings) -> int:
    """The n-gram bucket a task hint adds ("math", "code", ...; case and spaces ignored)."""
    return zlib.crc32(("\x00task:" + hint.strip().lower()).encode()) % settings.buckets


def prompt_features(text: str, hint: str | None, spec: RouterFeatures) -> Featurized:
    """One prompt's features. The hint's bucket may repeat an n-gram's: both the sparse matrix and
    the dot product then add them up."""
    settings = spec.settings
    kept = clipped(text, settings)
    tokens, last = _tokens_and_last_block(kept) if spec.embedding_scale else (tokens_of(kept), 0)
    buckets, values = ngram_counts(tokens, settings)
    columns = [buckets, np.arange(settings.buckets, spec.embedding_start)]
    numbers = [values, np.array(structural(kept, tokens, len(text)))]
    if spec.hints and hint:
        columns.append(np.array([hint_bucket(hint, settings)]))
        numbers.append(np.ones(1))
    rows = word_vectors().word_rows(tokens) if spec.embedding_scale else None
    return Featurized(np.concatenate(columns), np.concatenate(numbers), rows, last)


def _tokens_and_last_block(kept: str) -> tuple[list[str], int]:
    """The tokens, and how many of them are the last block's (the text after the last blank line).
    The two parts are tokenized apart and joined: no token spans a space, so the list is the one a
    single pass gives, and the last block is not read twice (a blank line is common in real prompts)."""
    start = kept.rfind("\n\n")
    if start < 0:
        tokens = tokens_of(kept)
        return tokens, len(tokens)
    last = tokens_of(kept[start:])
    return tokens_of(kept[:start]) + last, len(last)


def feature_row(featurized: Featurized, spec: RouterFeatures) -> tuple[np.ndarray, np.ndarray]:
    """(columns, values) of the whole row, word vectors expanded (for training)."""
    if featurized.word_rows is None:
        return featurized.columns, featurized.values
    vectors = word_vectors()
    dense = vectors.prompt_vectors(featurized.word_rows, featurized.last_block) * spec.embedding_scale
    columns = np.arange(spec.embedding_start, spec.embedding_start + vectors.size)
    return np.concatenate((featurized.columns, columns)), np.concatenate((featurized.values, dense))
