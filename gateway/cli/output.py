"""Plain-text tables for CLI listings (``--json`` prints the rows instead)."""

from __future__ import annotations

import json
import math
from typing import Any

import typer


def print_rows(rows: list[dict[str, Any]], columns: list[str], as_json: bool = False) -> None:
    if as_json:
        typer.echo(json.dumps(rows))
        return
    cells = [{c: cell(r.get(c)) for c in columns} for r in rows]
    widths = {c: max([len(c), *(len(r[c]) for r in cells)]) for c in columns}
    numeric = {c for c in columns if rows and all(isinstance(r.get(c), (int, float)) or r.get(c) is None for r in rows)}
    typer.echo("  ".join(c.rjust(widths[c]) if c in numeric else c.ljust(widths[c]) for c in columns))
    for row in cells:
        typer.echo("  ".join(row[c].rjust(widths[c]) if c in numeric else row[c].ljust(widths[c]) for c in columns))


def cell(value: Any) -> str:
    """One format for every number in every table: plain decimals (never 1.2e-05), six significant
    digits at most, no trailing zeros; "-" for nothing."""
    if value is None:
        return "-"
    if isinstance(value, bool) or not isinstance(value, float):
        return str(value)
    if value == 0 or not math.isfinite(value):
        return "0" if value == 0 else str(value)
    decimals = min(max(5 - math.floor(math.log10(abs(value))), 0), 12)
    text = f"{value:,.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text
