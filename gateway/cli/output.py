"""Plain-text tables for CLI listings (``--json`` prints the rows instead)."""

from __future__ import annotations

import json
from typing import Any

import typer


def print_rows(rows: list[dict[str, Any]], columns: list[str], as_json: bool = False) -> None:
    if as_json:
        typer.echo(json.dumps(rows))
        return
    cells = [{c: "-" if r.get(c) is None else str(r.get(c, "")) for c in columns} for r in rows]
    widths = {c: max([len(c), *(len(r[c]) for r in cells)]) for c in columns}
    typer.echo("  ".join(c.ljust(widths[c]) for c in columns))
    for row in cells:
        typer.echo("  ".join(row[c].ljust(widths[c]) for c in columns))
