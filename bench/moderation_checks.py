"""Moderation speed and quality (not a test): what the default input checks cost, and how well
the detectors do on the project's labelled set. Writes both tables to docs/moderation.md.

    python bench/moderation_checks.py [--iterations 5000] [--no-write]

Target (issue #6): default input checks on a 1 KB prompt take at most 100 us at p50.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.doc_sections import write_section  # noqa: E402
from bench.timing import percentiles_us  # noqa: E402

PROMPTS = {
    "1 KB prose": ("Summarise the attached quarterly report for the leadership team, focusing on revenue, "
                   "churn and the hiring plan; keep it to five bullet points and flag anything unusual. ") * 6,
    "1 KB with an e-mail and a key": ("Please forward the invoice to billing@example.com and rotate the key "
                                      "AKIAIOSFODNN7EXAMPLE before Friday; the rest is ordinary text. ") * 6,
    "1 KB code": ("def handler(event, context):\n    items = [x * 2 for x in event['values'] if x > 0]\n"
                  "    return {'status': 200, 'count': len(items)}\n") * 8,
}


def speed(iterations: int) -> str:
    from moderation import engine, policy

    rules = policy.Policy()  # the default input policy
    lines = ["| prompt | chars | p50 us | p99 us |", "|---|---:|---:|---:|"]
    for name, text in PROMPTS.items():
        body = {"messages": [{"role": "user", "content": text[:1024]}]}
        p50, p99 = percentiles_us(lambda body=body: engine.check_request(body, rules), iterations)
        lines.append(f"| {name} | {len(text[:1024])} | {p50:.0f} | {p99:.0f} |")
    return "\n".join(lines)


def quality() -> str:
    from moderation import engine, policy, testset

    rules = policy.build({"input": {"pii": "flag", "secret": "flag", "injection": "flag"}})
    counts: Counter = Counter()
    cases = testset.build()
    for case in cases:
        verdict, _ = engine.check_request({"messages": [{"role": "user", "content": case.text}]}, rules)
        for category in ("pii", "secret", "injection"):
            counts[(category, category in verdict.categories, category in case.categories)] += 1
    lines = [f"{len(cases)} cases ({sum(1 for c in cases if not c.categories)} hard negatives).", "",
             "| category | positives | precision | recall |", "|---|---:|---:|---:|"]
    for category in ("pii", "secret", "injection"):
        tp, fp, fn = (counts[(category, True, True)], counts[(category, True, False)], counts[(category, False, True)])
        lines.append(f"| {category} | {tp + fn} | {tp / max(tp + fp, 1):.3f} | {tp / max(tp + fn, 1):.3f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=5000)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {0})
    speed_table, quality_table = speed(args.iterations), quality()
    print(speed_table, "\n", quality_table, sep="\n")
    if not args.no_write:
        write_section("moderation.md", "speed", f"Measured {time.strftime('%Y-%m-%d')} on one pinned core.\n\n{speed_table}")
        write_section("moderation.md", "quality", quality_table)


if __name__ == "__main__":
    main()
