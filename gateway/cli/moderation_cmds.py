"""``tollgate moderation …``: train the optional classifier; check a text against the policy."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from .progress import progress

moderation_app = typer.Typer(no_args_is_help=True, help="Train the moderation classifier; check texts.")


@moderation_app.command("train")
def train_cmd(
    data: Path = typer.Option(..., help='JSON Lines: {"text": ..., "label": "toxic" | "ok"}.'),
    out: Path = typer.Option(..., help="Where to write the classifier (JSON)."),
) -> None:
    """Fit one logistic regression per label; use it with moderation.classifier.artifact."""
    from moderation.classifier import read_examples, train

    try:
        with progress("fitting the classifier", None):
            model = train(read_examples(data))
    except (OSError, ValueError) as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from None
    model.save(out)
    typer.echo(f"wrote {out}: labels {', '.join(sorted(model.labels))}")


@moderation_app.command("check")
def check_cmd(text: str, direction: str = typer.Option("input", help="input or output")) -> None:
    """What the default policy finds in a text, and the text as it would be sent."""
    from moderation import engine, policy

    verdict, redacted = engine.check_text(text, policy.Policy(), direction)
    typer.echo(json.dumps({"action": verdict.action, "categories": verdict.categories,
                           "kinds": sorted(verdict.kinds), "text": redacted}))
