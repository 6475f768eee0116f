"""Routing data as it is usually published: a table with one column per model.

Benchmark result sets (RouteLLM's evaluation CSVs, RouterBench-style exports, a team's own eval
runs) put the prompt in one column and each model's correctness or score in others. This turns
such a table (CSV with a header row, or JSON Lines) into the training format of ``router.data``,
given which columns hold the prompt, the weak model and the strong model.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .data import DataError

_TRUE = {"true", "yes", "correct"}
_FALSE = {"false", "no", "incorrect", "wrong"}


@dataclass(frozen=True)
class Columns:
    prompt: str
    weak: str
    strong: str
    domain: str | None = None
    id: str | None = None


def score(value: Any) -> float:
    """A model's result as a number: booleans and their spellings, or any number."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return 1.0
        if text in _FALSE:
            return 0.0
        return float(text)  # ValueError for anything else
    raise ValueError(f"not a score: {value!r}")


def converted(row: dict[str, Any], columns: Columns) -> dict[str, Any]:
    """One row as a training record (``prompt``, ``weak``, ``strong`` and the optional fields)."""
    missing = [c for c in (columns.prompt, columns.weak, columns.strong) if row.get(c) in (None, "")]
    if missing:
        raise ValueError(f"no value in column(s) {', '.join(missing)}")
    record = {"prompt": str(row[columns.prompt]), "weak": score(row[columns.weak]), "strong": score(row[columns.strong])}
    for field, column in (("domain", columns.domain), ("id", columns.id)):
        if column is not None and row.get(column) not in (None, ""):
            record[field] = str(row[column])
    return record


def _rows(path: Path) -> Iterator[dict[str, Any]]:
    with open(path, encoding="utf-8", newline="") as handle:
        if path.suffix.lower() in (".jsonl", ".json", ".ndjson"):
            for line in handle:
                if line.strip():
                    yield json.loads(line)
            return
        csv.field_size_limit(sys.maxsize)  # model responses in a column can be long
        yield from csv.DictReader(handle)


def convert(source: str | Path, columns: Columns) -> list[dict[str, Any]]:
    """Every row of the table as a training record; a bad row names its row number."""
    path = Path(source)
    records = []
    try:
        for number, row in enumerate(_rows(path), start=1):
            if not isinstance(row, dict):
                raise DataError(f"{path}: row {number} is not an object")
            try:
                records.append(converted(row, columns))
            except ValueError as err:
                raise DataError(f"{path}: row {number}: {err}") from None
    except (OSError, json.JSONDecodeError, csv.Error, UnicodeDecodeError) as err:
        raise DataError(f"cannot read {path}: {err}") from None
    if not records:
        raise DataError(f"{path}: no rows")
    return records
