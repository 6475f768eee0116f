"""What a prompt is about, in microseconds: the direction of its words' mean vector from a table distilled
from a sentence encoder (router/distill.py; all-MiniLM-L6-v2, Apache-2.0, 64 dimensions).

Hashed n-grams only know the words a router was trained on; the word vectors carry what the encoder
learned about words the training data never showed (a chemistry question resembles other science
questions even when no word is shared). Two vectors are kept: over the whole (clipped) prompt, and
over its last block (the text after the last blank line), which in few-shot and templated prompts
is the question actually asked. Words not in the table are left out of both. Each is scaled to unit
length: measured on real data (docs/router.md), the direction alone routes better than the raw
mean, whose length only says how alike the prompt's words are (AlpacaEval 0.590 against 0.577 APGR).
"""

from __future__ import annotations

from functools import cache
from itertools import repeat
from pathlib import Path

import numpy as np

TABLE = Path(__file__).resolve().parent / "data" / "word-vectors.npz"
TABLE_NAME = "all-MiniLM-L6-v2/whole-words/pca64"  # recorded in artifacts: a router needs the table it was trained with


class WordVectors:
    def __init__(self, words: list[str], vectors: np.ndarray) -> None:
        # Row 0 is the zero vector: unknown words look up to it, so a lookup never branches.
        self.rows = {word: row for row, word in enumerate(words, start=1)}
        self.vectors = np.vstack((np.zeros((1, vectors.shape[1])), vectors))
        self.dimensions = vectors.shape[1]

    @property
    def size(self) -> int:
        """Feature columns: the whole prompt's mean, then the last block's."""
        return 2 * self.dimensions

    def word_rows(self, tokens: list[str]) -> np.ndarray:
        """Each token's row (0: unknown)."""
        return np.fromiter(map(self.rows.get, tokens, repeat(0)), dtype=np.intp, count=len(tokens))

    def prompt_vectors(self, rows: np.ndarray, last: int) -> np.ndarray:
        """The features: the unit-length mean vector of the prompt's known words, then of its last
        block's (zeros where no word is known)."""
        gathered = self.vectors[rows]  # the last block's rows end it: gathered once for both
        whole = _direction(gathered)
        if last == len(rows):
            return np.concatenate((whole, whole))
        return np.concatenate((whole, _direction(gathered[len(rows) - last :])))


def _direction(vectors: np.ndarray) -> np.ndarray:
    total = vectors.sum(0)
    norm = float(np.sqrt(total @ total))
    return total / norm if norm else total


@cache
def word_vectors(path: Path = TABLE) -> WordVectors:
    """The shipped table, loaded once per process (~22,000 words; int8 with a scale per word)."""
    with np.load(path) as table:
        vectors = table["vectors"].astype(np.float64) * table["scales"][:, None]
        return WordVectors(table["words"].tolist(), vectors)
