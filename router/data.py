"""Router training data (JSON Lines), in the two shapes routing datasets come in.

* per-prompt scores: ``{"prompt": ..., "weak": s_w, "strong": s_s}`` (0/1 correctness or any
  score); the strong model "wins" where ``s_s > s_w``;
* pairwise preferences: ``{"prompt": ..., "winner": "strong" | "weak" | "tie"}``; for quality
  curves a win scores 1 and a loss 0, and a tie scores 1 for both.

``"messages"`` (an OpenAI chat list) may stand in for ``"prompt"``; ``"domain"`` and ``"id"`` are
optional and kept.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wire.texts import prompt_text


class DataError(ValueError):
    """A line that is not a usable example; the message names the file and line."""


@dataclass(frozen=True)
class Example:
    text: str
    weak: float  # quality of the weak model's answer
    strong: float  # quality of the strong model's answer
    domain: str | None = None
    id: str | None = None

    @property
    def strong_wins(self) -> bool:
        return self.strong > self.weak


_PAIRWISE = {"strong": (0.0, 1.0), "weak": (1.0, 0.0), "tie": (1.0, 1.0)}


def parse_record(record: Any) -> Example:
    if not isinstance(record, dict):
        raise ValueError("each line must be a JSON object")
    text = prompt_text(record)
    if "winner" in record:
        if record["winner"] not in _PAIRWISE:
            raise ValueError('"winner" must be "strong", "weak" or "tie"')
        weak, strong = _PAIRWISE[record["winner"]]
    elif "weak" in record and "strong" in record:
        weak, strong = record["weak"], record["strong"]
        if isinstance(weak, bool) or isinstance(strong, bool) or not all(isinstance(v, (int, float)) for v in (weak, strong)):
            raise ValueError('"weak" and "strong" must be numbers')
    else:
        raise ValueError('needs "weak" and "strong" scores, or "winner"')
    domain, ident = record.get("domain"), record.get("id")
    return Example(text, float(weak), float(strong), None if domain is None else str(domain), None if ident is None else str(ident))


def parse_lines(lines: Iterable[str], source: str = "<data>") -> list[Example]:
    examples = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            examples.append(parse_record(json.loads(line)))
        except (json.JSONDecodeError, ValueError) as err:
            raise DataError(f"{source}:{number}: {err}") from None
    if not examples:
        raise DataError(f"{source}: no examples")
    return examples


def load(path: str | Path) -> list[Example]:
    try:
        with open(path, encoding="utf-8") as handle:
            return parse_lines(handle, str(path))
    except OSError as err:
        raise DataError(f"cannot read {path}: {err}") from None
