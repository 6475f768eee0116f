"""``tollgate router …``: train and evaluate the cheap-or-flagship router offline."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

router_app = typer.Typer(no_args_is_help=True, help="Train and evaluate the cheap-or-flagship router.")


def _examples(data: Path):
    from router.data import DataError, load

    try:
        return load(data)
    except DataError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from None


@router_app.command("train")
def train_cmd(
    data: Path = typer.Option(..., help="JSON Lines: per-prompt weak/strong scores or pairwise winners (docs/router.md)."),
    out: Path = typer.Option(..., help="Where to write the router (JSON)."),
    regularization: float = typer.Option(1.0, min=1e-6, help="Inverse regularization strength (C)."),
) -> None:
    """Fit a router that predicts P(strong model wins | prompt)."""
    from router.train import fit

    examples = _examples(data)
    try:
        model = fit(examples, regularization=regularization)
    except ValueError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from None
    model.save(out)
    metrics = model.metadata["in_sample"]
    typer.echo(f"wrote {out}: {len(examples)} examples, in-sample APGR {metrics['apgr']:.3f} "
               f"(use `tollgate router eval --cv 5` for an honest estimate)")


@router_app.command("eval")
def eval_cmd(
    data: Path = typer.Option(..., help="Labelled JSON Lines, as for train."),
    router: Optional[Path] = typer.Option(None, help="A trained router to score the data with."),
    cv: Optional[int] = typer.Option(None, min=2, help="Instead: K-fold cross-validation (each prompt scored by a router trained on the other folds)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """APGR, CPT(50%), CPT(80%) and the quality curve over 11 score quantiles."""
    from router.evaluate import evaluate
    from router.model import RouterFileError, load
    from router.train import cross_validated_scores

    if (router is None) == (cv is None):
        typer.echo("error: give exactly one of --router or --cv", err=True)
        raise typer.Exit(2)
    examples = _examples(data)
    try:
        if router is not None:
            model = load(router)
            scores = [model.score(e.text) for e in examples]
        else:
            scores = cross_validated_scores(examples, cv)
    except (RouterFileError, ValueError) as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from None
    result = evaluate(scores, examples)
    if as_json:
        typer.echo(json.dumps(result.as_dict()))
        return
    typer.echo(f"weak quality {result.weak_quality:.3f}, strong quality {result.strong_quality:.3f}")
    typer.echo(f"APGR {result.apgr:.3f}   CPT(50%) {result.cpt50:.1f}% of calls   CPT(80%) {result.cpt80:.1f}% of calls")
    typer.echo("threshold  strong calls  quality")
    for point in result.curve:
        typer.echo(f"{point['threshold']:9.4f}  {100 * point['strong_share']:11.1f}%  {point['quality']:.3f}")
