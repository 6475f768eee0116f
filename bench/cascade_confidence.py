"""How well does the cascade's confidence separate right from wrong cheap answers? (docs/router.md)

Reads the records ``tollgate router collect`` writes (each with the answer's token logprobs and
whether it was right), scores every answer with each of ``router.confidence.SCORERS``, and
reports each scorer's AUROC with a bootstrap 90% interval; then calibrates the escalation
threshold for a few target rates on random halves and reports the rate reached on the other half.

    .venv/bin/tollgate router collect --model gemma --data bench/data/cascade-probe.jsonl \\
        --out probe.jsonl --checker prefix --completions --max-tokens 4 --temperature 0 \\
        --stop $'\\n' --stop . --stop ,
    .venv/bin/python bench/cascade_confidence.py probe.jsonl
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from router import escalation
from router.confidence import SCORERS, assess, auroc


def _score(record: dict[str, Any], scorer: str) -> float:
    return assess(record["response"], record["logprobs"], record.get("finish_reason"), False, True, scorer).score


def _interval(scores: list[float], correct: list[bool], rounds: int = 1000, seed: int = 0) -> tuple[float, float]:
    rng = random.Random(seed)
    values = []
    for _ in range(rounds):
        picks = [rng.randrange(len(scores)) for _ in scores]
        value = auroc([scores[i] for i in picks], [correct[i] for i in picks])
        if value == value:  # not NaN (a resample with only right or only wrong answers)
            values.append(value)
    values.sort()
    return values[int(0.05 * len(values))], values[int(0.95 * len(values)) - 1]


def report(records: list[dict[str, Any]], families: dict[str, str]) -> str:
    correct = [bool(r["correct"]) for r in records]
    lines = [f"{len(records)} answers, {sum(correct)} right ({100 * sum(correct) / len(records):.1f}%)", ""]
    by_family: dict[str, list[bool]] = defaultdict(list)
    for record in records:
        by_family[families.get(record["id"], "-")].append(bool(record["correct"]))
    lines += ["| family | answers | right |", "|---|---:|---:|"]
    lines += [f"| {name} | {len(values)} | {100 * sum(values) / len(values):.0f}% |" for name, values in sorted(by_family.items())]
    lines += ["", "| scorer | AUROC | 90% bootstrap interval |", "|---|---:|---|"]
    for scorer in SCORERS:
        scores = [_score(r, scorer) for r in records]
        low, high = _interval(scores, correct)
        lines.append(f"| {scorer} | {auroc(scores, correct):.3f} | {low:.3f} to {high:.3f} |")
    answers = [escalation.CheapAnswer(_score(r, "mean_min"), bool(r["correct"])) for r in records]
    lines += ["", "| target escalation rate | reached on the held-out half: mean | 5th to 95th percentile of 200 splits |",
              "|---:|---:|---:|"]
    for target in (0.2, 0.3, 0.5):
        misses = []
        for seed in range(200):
            fitted, held = escalation.split(answers, 0.5, seed)
            threshold = escalation.for_escalation_rate(target, fitted).threshold
            misses.append(escalation.outcome(threshold, held).escalation_rate)
        misses.sort()
        low, high = misses[int(0.05 * len(misses))], misses[int(0.95 * len(misses)) - 1]
        lines.append(f"| {100 * target:.0f}% | {100 * statistics.mean(misses):.1f}% | {100 * low:.1f}% to {100 * high:.1f}% |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("records", type=Path, help="JSON Lines from `tollgate router collect`")
    parser.add_argument("--prompts", type=Path, default=Path(__file__).with_name("data") / "cascade-probe.jsonl",
                        help="the labelled prompts (for their families)")
    args = parser.parse_args()
    records = [json.loads(line) for line in args.records.read_text().splitlines() if line.strip()]
    families = {}
    if args.prompts.exists():
        families = {row["id"]: row.get("family", "-") for row in map(json.loads, args.prompts.read_text().splitlines())}
    print(report(records, families))


if __name__ == "__main__":
    main()
