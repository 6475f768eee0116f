"""``tollgate router …``: train, evaluate and calibrate the router offline; set live thresholds."""

from __future__ import annotations

import json
import math
from pathlib import Path

import typer

from router.data import Example

from .options import ADMIN_KEY, JSON, URL, call
from .output import print_rows
from .progress import progress

router_app = typer.Typer(no_args_is_help=True, help="Train, evaluate and calibrate the router; set live thresholds.")
_CHEAP_COST = typer.Option(None, "--cheap-cost-usd", help="Mean cost of one call to the cheap model (USD).")
_STRONG_COST = typer.Option(None, "--strong-cost-usd", help="Mean cost of one call to the strong model (USD).")


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(2)


def _examples(data: Path) -> list[Example]:
    from router.data import DataError, load

    try:
        return load(data)
    except DataError as err:
        raise _fail(str(err)) from None


_HINTS = typer.Option(False, "--hints", help="Use each row's domain as the task hint (a router that reads metadata.tollgate_task).")
_NO_VECTORS = typer.Option(False, "--no-word-vectors", help="N-grams and structure only (by default word vectors are tried, kept if cross-validation says they help).")


def _scores(examples: list[Example], router: Path | None, cv: int | None, hints: bool = False,
            no_word_vectors: bool = False) -> list[float]:
    """Each prompt's score from a saved router, or (honestly) from K-fold cross-validation."""
    from router.model import RouterFileError, load
    from router.train import candidate_features, cross_validated_scores

    if (router is None) == (cv is None):
        raise _fail("give exactly one of --router or --cv")
    try:
        if router is not None:
            model = load(router)
            return [model.score(e.text, e.domain if model.features.hints else None) for e in examples]
        assert cv is not None
        features = candidate_features(hints=hints, word_vectors=not no_word_vectors)
        with progress(f"{cv}-fold cross-validation", cv) as step:
            return cross_validated_scores(examples, cv, features=features, on_fold=step)
    except (RouterFileError, ValueError) as err:
        raise _fail(str(err)) from None


def _costs(cheap: float | None, strong: float | None) -> tuple[float, float] | None:
    if cheap is None or strong is None:
        if cheap is not None or strong is not None:
            raise _fail("give both --cheap-cost-usd and --strong-cost-usd, or neither")
        return None
    return cheap, strong


MIN_APGR = 0.55  # a router below this routes little better than chance (0.5)


def _ledger_examples(url: str, admin_key: str, tenants: list[str]) -> tuple[list[Example], int]:
    """Cascade outcomes the gateway kept (escalated prompts count as strong wins), and how many
    labels were skipped: escalations the infrastructure caused, and labels an older gateway kept
    without saying why it escalated (those may be infrastructure failures too)."""
    from router.data import parse_record

    from ..stages.cascade import INFRASTRUCTURE

    examples, skipped, params = [], 0, {"limit": 10_000}
    while True:
        page = call("GET", url, admin_key, "/admin/router/labels", params=params)
        for label in page["data"]:
            if tenants and label.get("tenant") not in tenants:
                continue
            unexplained = label.get("escalated") and "reason" not in label
            if unexplained or label.get("reason") in INFRASTRUCTURE:
                skipped += 1
            else:
                examples.append(parse_record(label))
        if not page["next"]:
            return examples, skipped
        params["after"] = page["next"]


@router_app.command("import")
def import_cmd(
    table: Path = typer.Option(..., help="CSV with a header row, or JSON Lines: one prompt per row, a column per model."),
    out: Path = typer.Option(..., help="Where to write the training JSON Lines."),
    prompt_column: str = typer.Option("prompt", help="The column holding the prompt."),
    weak_column: str = typer.Option(..., help="The weak model's correctness or score (true/false, 0/1, any number)."),
    strong_column: str = typer.Option(..., help="The strong model's correctness or score."),
    domain_column: str | None = typer.Option(None, help="Optional: a column kept as the record's domain."),
    id_column: str | None = typer.Option(None, help="Optional: a column kept as the record's id."),
) -> None:
    """Turn a published result table (e.g. RouteLLM's evaluation CSVs) into router training data."""
    from router.data import DataError
    from router.tables import Columns, convert

    try:
        records = convert(table, Columns(prompt_column, weak_column, strong_column, domain_column, id_column))
    except DataError as err:
        raise _fail(str(err)) from None
    out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    wins = sum(r["strong"] > r["weak"] for r in records)
    typer.echo(f"wrote {out}: {len(records)} prompts, the strong model wins on {wins} ({100 * wins / len(records):.1f}%)")


@router_app.command("build-dataset")
def build_dataset_cmd(
    out: Path = typer.Option(..., help="Where to write the JSON Lines."),
    size: int = typer.Option(6000, min=100, help="About how many prompts."),
    seed: int = typer.Option(7, help="Random seed; the same seed gives the same file."),
    add_graded: Path | None = typer.Option(None, "--add-graded", help="Append a real file graded 1-10 (the Arena file of ../shared/router-data), grades scaled to 0.1-1."),
) -> None:
    """The default router's training data: templated prompts labelled from published accuracies (router/dataset.py)."""
    from router.dataset import write

    if add_graded is not None and not add_graded.exists():
        raise _fail(f"{add_graded} does not exist")
    try:
        written = write(out, size, seed, add_graded)
    except (KeyError, TypeError, ValueError) as err:  # ValueError covers malformed JSON
        raise _fail(f"{add_graded}: each line must be a JSON object with numeric \"weak\" and \"strong\" grades ({err!r})") from None
    typer.echo(f"wrote {out}: {written} prompts")


@router_app.command("train")
def train_cmd(
    out: Path = typer.Option(..., help="Where to write the router (JSON)."),
    data: Path | None = typer.Option(None, help="JSON Lines: per-prompt weak/strong scores or pairwise winners (docs/router.md)."),
    from_ledger: bool = typer.Option(False, "--from-ledger", help="Also train on the cascade's escalation outcomes kept by a running gateway (implies --cv 5)."),
    regularization: float | None = typer.Option(None, min=1e-6, help="Inverse regularization strength (C); by default chosen by 3-fold cross-validation on the data (0.1 to 10)."),
    cv: int | None = typer.Option(None, min=2, help="Also measure K-fold cross-validated APGR and CPT and keep them in the artifact."),
    tenant: list[str] = typer.Option([], help="With --from-ledger: only this tenant's labels (repeatable)."),
    hints: bool = _HINTS,
    no_word_vectors: bool = _NO_VECTORS,
    min_apgr: float = typer.Option(MIN_APGR, help="With --cv or --from-ledger: refuse to write a router whose cross-validated APGR is below this."),
    force: bool = typer.Option(False, "--force", help="Write the router even below --min-apgr."),
    url: str = URL,
    admin_key: str | None = typer.Option(None, "--admin-key", envvar="TOLLGATE_ADMIN_KEY", help="With --from-ledger."),
) -> None:
    """Fit a router that predicts P(strong model wins | prompt)."""
    from router.evaluate import evaluate
    from router.train import candidate_features, cross_validated_scores, fit

    if data is None and not from_ledger:
        raise _fail("give --data, --from-ledger, or both")
    examples = _examples(data) if data is not None else []
    if from_ledger:
        if not admin_key:
            raise _fail("--from-ledger needs an admin key (--admin-key or TOLLGATE_ADMIN_KEY)")
        learned, skipped = _ledger_examples(url, admin_key, tenant)
        typer.echo(f"{len(learned)} cascade outcomes from {url} ({sum(e.strong_wins for e in learned)} escalated); "
                   f"{skipped} skipped (the cheap engine failed, hung or was down, or no reason was kept)")
        examples += learned
        cv = cv or 5
    if cv is not None and len(examples) < 2 * cv:
        raise _fail(f"{len(examples)} examples are too few for {cv}-fold cross-validation: collect more labels")
    try:
        with progress("fitting the router", 1 + (cv or 0)) as step:
            features = candidate_features(hints=hints, word_vectors=not no_word_vectors)
            model = fit(examples, features, regularization=regularization)
            step(1)
            scores = (cross_validated_scores(examples, cv, features=features, regularization=regularization, on_fold=step)
                      if cv else None)
        if cv is not None and scores is not None:
            held_out = evaluate(scores, examples)
            model.metadata["cross_validated"] = {"folds": cv, "apgr": held_out.apgr, "cpt50": held_out.cpt50,
                                                 "cpt80": held_out.cpt80}
    except ValueError as err:
        raise _fail(str(err)) from None
    metrics = model.metadata.get("cross_validated") or model.metadata["in_sample"]
    kind = f"{cv}-fold cross-validated" if cv is not None else "in-sample (use --cv 5 for an honest estimate)"
    summary = (f"{len(examples)} examples, C={model.metadata['regularization']}, "
               f"word vectors x{model.metadata['word_vectors']:g}{', task hints' if hints else ''}, "
               f"APGR {metrics['apgr']:.3f}, CPT(50%) {metrics['cpt50']:.1f}% {kind}")
    if cv is not None and metrics["apgr"] < min_apgr and not force:
        typer.echo(f"error: not written: {summary}; below --min-apgr {min_apgr:g} (0.5 is random routing). "
                   "Collect more or cleaner labels, or pass --force.", err=True)
        raise typer.Exit(1)
    model.save(out)
    typer.echo(f"wrote {out}: {summary}")


@router_app.command("eval")
def eval_cmd(
    data: Path = typer.Option(..., help="Labelled JSON Lines, as for train."),
    router: Path | None = typer.Option(None, help="A trained router to score the data with."),
    cv: int | None = typer.Option(None, min=2, help="Instead: K-fold cross-validation (each prompt scored by a router trained on the other folds)."),
    cheap_cost: float | None = _CHEAP_COST,
    strong_cost: float | None = _STRONG_COST,
    plot: Path | None = typer.Option(None, help="Write the curve as SVG (quality against cost when costs are given)."),
    hints: bool = _HINTS,
    no_word_vectors: bool = _NO_VECTORS,
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """APGR, CPT(50%), CPT(80%) and the quality (and cost) curve over 11 score quantiles."""
    from router.evaluate import evaluate
    from router.plot import curve_svg

    examples = _examples(data)
    costs = _costs(cheap_cost, strong_cost)
    result = evaluate(_scores(examples, router, cv, hints, no_word_vectors), examples)
    if costs is not None:
        for point in result.curve:
            point["cost_per_call_usd"] = (1 - point["strong_share"]) * costs[0] + point["strong_share"] * costs[1]
    if plot is not None:
        x_key, x_label = ("cost_per_call_usd", "USD per call") if costs else ("strong_share", "share of calls to the strong model")
        points = [(p[x_key], p["quality"]) for p in result.curve]
        plot.write_text(curve_svg(points, x_label, result.weak_quality, result.strong_quality,
                                  f"Routing curve: APGR {result.apgr:.3f}"))
    if as_json:
        typer.echo(json.dumps(result.as_dict()))
        return
    typer.echo(f"weak quality {result.weak_quality:.3f}, strong quality {result.strong_quality:.3f}")
    typer.echo(f"APGR {result.apgr:.3f}   CPT(50%) {result.cpt50:.1f}% of calls   CPT(80%) {result.cpt80:.1f}% of calls")
    typer.echo("threshold  strong calls  quality" + ("  USD/call" if costs else ""))
    for point in result.curve:
        cost = f"  {point['cost_per_call_usd']:.6f}" if costs else ""
        typer.echo(f"{point['threshold']:9.4f}  {100 * point['strong_share']:11.1f}%  {point['quality']:.3f}{cost}")


@router_app.command("calibrate")
def calibrate_cmd(
    data: Path = typer.Option(..., help="Labelled JSON Lines, as for train."),
    router: Path | None = typer.Option(None, help="The router whose threshold is chosen."),
    cv: int | None = typer.Option(None, min=2, help="Instead: calibrate on cross-validated scores."),
    strong_fraction: float | None = typer.Option(None, help="At most this share of calls to the strong model."),
    max_cost_usd: float | None = typer.Option(None, help="At most this mean cost per call (needs both costs)."),
    min_quality: float | None = typer.Option(None, help="At least this mean quality, with the fewest strong calls."),
    cheap_cost: float | None = _CHEAP_COST,
    strong_cost: float | None = _STRONG_COST,
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """The threshold that meets one target on this data; apply it with `tollgate router set`."""
    from router import calibrate

    targets = [t for t in (strong_fraction, max_cost_usd, min_quality) if t is not None]
    if len(targets) != 1:
        raise _fail("give exactly one of --strong-fraction, --max-cost-usd or --min-quality")
    examples = _examples(data)
    costs = _costs(cheap_cost, strong_cost)
    scores = _scores(examples, router, cv)
    try:
        if strong_fraction is not None:
            result = calibrate.for_strong_share(strong_fraction, scores, examples, costs)
        elif max_cost_usd is not None:
            if costs is None:
                raise ValueError("--max-cost-usd needs --cheap-cost-usd and --strong-cost-usd")
            result = calibrate.for_max_cost(max_cost_usd, costs, scores, examples)
        else:
            assert min_quality is not None
            result = calibrate.for_min_quality(min_quality, scores, examples, costs)
    except ValueError as err:
        raise _fail(str(err)) from None
    if as_json:
        typer.echo(json.dumps(result.__dict__))
        return
    cost = f", {result.cost_per_call_usd:.6f} USD per call" if result.cost_per_call_usd is not None else ""
    typer.echo(f"threshold {result.threshold:.6f}: {100 * result.strong_share:.1f}% strong calls, "
               f"quality {result.quality:.3f}{cost}")


@router_app.command("collect")
def collect_cmd(
    model: str = typer.Option(..., help="The model to label, by its public name (the cheap model: nothing escalates)."),
    data: Path = typer.Option(..., help="JSON Lines: \"prompt\" or \"messages\", and \"answer\" or \"answers\" (references)."),
    out: Path = typer.Option(..., help="Where to write one record per prompt (JSON Lines), for calibrate-cascade."),
    checker: str = typer.Option("exact", help="exact, prefix, contains, number (the last number in the answer), or module:function."),
    flagship: str | None = typer.Option(None, help="Also ask this model, to measure the flagship's correctness too."),
    max_tokens: int | None = typer.Option(None, min=1, help="Cap each answer (the cascade then judges a capped answer as the client's)."),
    temperature: float | None = typer.Option(None, min=0, help="Sampling temperature (default: the engine's)."),
    stop: list[str] = typer.Option([], help="A stop sequence (repeatable)."),
    completions: bool = typer.Option(False, "--completions", help="Use /v1/completions with the prompt as plain text (base models)."),
    scorer: str = typer.Option("mean_min", help="How logprobs become a confidence: mean_min, mean, min, tail or head (router.cascade.scorer)."),
    concurrency: int = typer.Option(4, min=1, max=64, help="Prompts in flight at once."),
    url: str = URL,
    api_key: str = typer.Option(..., "--api-key", envvar="TOLLGATE_API_KEY", help="A tenant's API key (env TOLLGATE_API_KEY); calls are billed to it."),
) -> None:
    """Send labelled prompts through the gateway and record each answer's confidence and correctness."""
    from router import checkers
    from router.confidence import SCORERS

    from .collect import Asking, CollectError, collect, read_prompts

    if scorer not in SCORERS:
        raise _fail(f"--scorer must be one of {', '.join(SCORERS)}")
    try:
        check = checkers.load(checker)
        prompts = read_prompts(data)
    except (ValueError, CollectError) as err:
        raise _fail(str(err)) from None
    asking = Asking(url, api_key, max_tokens, temperature, scorer, completions, tuple(stop))
    right = 0
    try:
        with out.open("w", encoding="utf-8") as handle, progress("asking", len(prompts)) as step:
            for record in collect(prompts, asking, check, model, flagship, concurrency, lambda done: step(1)):
                right += record["correct"]
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    except CollectError as err:
        raise _fail(str(err)) from None
    typer.echo(f"wrote {out}: {len(prompts)} answers of {model}, {right} right ({100 * right / len(prompts):.1f}%)")


def _cheap_answers(data: Path, flagship_accuracy: float, cheap_cost: float | None, flagship_cost: float | None) -> list:
    from router.escalation import CheapAnswer

    answers = []
    try:
        lines = data.read_text(encoding="utf-8").splitlines()
    except OSError as err:
        raise _fail(f"cannot read {data}: {err}") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            confidence, correct = record["confidence"], record["correct"]
            if not isinstance(confidence, int | float) or not isinstance(correct, bool | int):
                raise ValueError
            strong = record.get("flagship_correct")
            answers.append(CheapAnswer(
                float(confidence), bool(correct), float(flagship_accuracy if strong is None else strong),
                float(record.get("cheap_cost_usd") or cheap_cost or 0.0),
                float(record.get("flagship_cost_usd") or flagship_cost or 0.0)))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError):
            raise _fail(f"{data}:{number}: needs \"confidence\" (a number) and \"correct\" (true/false)") from None
    if not answers:
        raise _fail(f"{data}: no answers")
    return answers


@router_app.command("calibrate-cascade")
def calibrate_cascade_cmd(
    data: Path = typer.Option(..., help="Labelled cheap answers (JSON Lines with confidence and correct), e.g. from `router collect`."),
    escalation_rate: float | None = typer.Option(None, min=0, max=1, help="Escalate at most this share of calls."),
    min_quality: float | None = typer.Option(None, min=0, max=1, help="The fewest escalations reaching this mean quality."),
    max_cost_usd: float | None = typer.Option(None, min=0, help="The most escalations within this mean cost per call."),
    flagship_accuracy: float = typer.Option(1.0, min=0, max=1, help="The flagship's quality where the data did not measure it."),
    cheap_cost: float | None = typer.Option(None, "--cheap-cost-usd", help="Cost of a cheap call where the data has none."),
    flagship_cost: float | None = typer.Option(None, "--flagship-cost-usd", help="Cost of a flagship call where the data has none."),
    holdout: float | None = typer.Option(None, help="Calibrate on the rest, and report what the threshold does on this share held out."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """The cascade's escalation threshold for one target; apply it with `tollgate router set --escalation`."""
    from router import escalation

    targets = [t for t in (escalation_rate, min_quality, max_cost_usd) if t is not None]
    if len(targets) != 1:
        raise _fail("give exactly one of --escalation-rate, --min-quality or --max-cost-usd")
    answers = _cheap_answers(data, flagship_accuracy, cheap_cost, flagship_cost)
    try:
        fitted, held_out = escalation.split(answers, holdout) if holdout is not None else (answers, [])
        if escalation_rate is not None:
            point = escalation.for_escalation_rate(escalation_rate, fitted)
        elif min_quality is not None:
            point = escalation.for_min_quality(min_quality, fitted)
        else:
            assert max_cost_usd is not None
            point = escalation.for_max_cost(max_cost_usd, fitted)
    except ValueError as err:
        raise _fail(str(err)) from None
    check = escalation.outcome(point.threshold, held_out) if held_out else None
    separation = escalation.separation(fitted)
    result = {"threshold": point.threshold, "escalation_rate": point.escalation_rate, "quality": point.quality,
              "cost_per_call_usd": point.cost_per_call_usd, "answers": len(fitted),
              "auroc": None if math.isnan(separation) else separation, "cheap_accuracy": sum(a.correct for a in fitted) / len(fitted),
              "held_out": None if check is None else {"answers": len(held_out), "escalation_rate": check.escalation_rate,
                                                      "quality": check.quality, "cost_per_call_usd": check.cost_per_call_usd}}
    if as_json:
        typer.echo(json.dumps(result))
        return
    typer.echo(f"threshold {point.threshold:.6f}: escalates {100 * point.escalation_rate:.1f}% of {len(fitted)} calls, "
               f"quality {point.quality:.3f}, {point.cost_per_call_usd:.6f} USD per call")
    if result["auroc"] is None:
        typer.echo(f"the cheap model is right on {100 * result['cheap_accuracy']:.1f}% (AUROC needs right and wrong answers)")
    else:
        typer.echo(f"the cheap model is right on {100 * result['cheap_accuracy']:.1f}%; its confidence separates right from "
                   f"wrong with AUROC {result['auroc']:.3f} (0.5 = chance)")
    if check is not None:
        typer.echo(f"held out ({len(held_out)} calls): escalates {100 * check.escalation_rate:.1f}%, quality {check.quality:.3f}, "
                   f"{check.cost_per_call_usd:.6f} USD per call")
    typer.echo(f"apply it: tollgate router set --escalation {point.threshold:.6f}")


@router_app.command("set")
def set_cmd(
    threshold: float | None = typer.Option(None, min=0, max=1, help="The global threshold (model=\"auto\")."),
    escalation: float | None = typer.Option(None, min=0, max=1, help="The cascade's escalation threshold."),
    tenant: list[str] = typer.Option([], help="A per-tenant threshold, NAME=T (NAME=none removes it). Repeatable."),
    url: str = URL,
    admin_key: str = ADMIN_KEY,
) -> None:
    """Change live thresholds; every gateway replica applies them within a second."""
    overrides: dict[str, float | None] = {}
    for item in tenant:
        name, _, value = item.partition("=")
        try:
            overrides[name] = None if value.lower() == "none" else float(value)
        except ValueError:
            raise _fail(f"--tenant wants NAME=THRESHOLD, got {item!r}") from None
    payload = {"threshold": threshold, "escalation": escalation, "tenants": overrides}
    typer.echo(json.dumps(call("PUT", url, admin_key, "/admin/router/thresholds", json=payload), indent=2))


@router_app.command("show")
def show_cmd(url: str = URL, admin_key: str = ADMIN_KEY, as_json: bool = JSON) -> None:
    """The thresholds in force, and where each comes from (the config, or a live override)."""
    shown = call("GET", url, admin_key, "/admin/router/thresholds")
    if as_json:
        typer.echo(json.dumps(shown, indent=2))
        return
    overrides = shown["overrides"]
    rows = [{"setting": name, "in_force": shown[name], "configured": shown["configured"][name],
             "live_override": overrides[name]} for name in ("threshold", "escalation")]
    rows += [{"setting": f"threshold for tenant {tenant}", "in_force": value, "configured": None, "live_override": value}
             for tenant, value in sorted(shown["tenants"].items())]
    print_rows(rows, ["setting", "in_force", "configured", "live_override"])
