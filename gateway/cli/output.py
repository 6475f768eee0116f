"""Plain-text tables for CLI listings (``--json`` prints the rows instead)."""

from __future__ import annotations

import json
from typing import Any

import typer


def print_rows(rows: list[dict[str, Any]], columns: list[str], as_json: bool = False) -> None:
    if as_json:
        typer.echo(json.dumps(rows))
        return
    widths = {c: max([len(c), *(len(str(r.get(c, ""))) for r in rows)]) for c in columns}
    typer.echo("  ".join(c.ljust(widths[c]) for c in columns))
    for row in rows:
        typer.echo("  ".join(str(row.get(c, "")).ljust(widths[c]) for c in columns))
