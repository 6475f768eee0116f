"""The router on real per-prompt results (issue #16): K-fold cross-validated APGR and CPT(50%) on
every file of ``../shared/router-data`` (not shipped, not committed: see its README), beside the
baselines that README gives for the router as it was when the data arrived. Not a test; a
development tool for choosing features honestly (every score is out-of-fold).

    python bench/router_real_data.py [--data-dir ../shared/router-data] [--cv 5] [--seeds 1] [--no-word-vectors] [--hints]

``--hints`` gives each prompt its file's ``domain`` as the task hint (evaluating the router with a hint
beside without); ``--no-word-vectors`` is the router as it was before them (n-grams and structure).
``--seeds N`` repeats the cross-validation with N shuffles (seeds 0..N-1) and reports the mean and
standard deviation: which prompts share a fold moves APGR by about 0.01, as much as most changes.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from statistics import mean, stdev

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from router.data import load  # noqa: E402
from router.evaluate import evaluate  # noqa: E402
from router.features import READ_WINDOW, RouterFeatures  # noqa: E402
from router.train import cross_validated_scores  # noqa: E402
from wire.features import FeatureSettings  # noqa: E402

DEFAULT_DIR = Path(__file__).resolve().parents[2] / "shared" / "router-data"  # beside the project
# APGR / CPT(50%) of the router when the data arrived (the folder's README, 5-fold)
BASELINES = {
    "routerbench_gpt4_vs_mixtral": (0.580, 35.9),
    "routerbench_gpt4_vs_mixtral_qonly": (0.578, 37.5),
    "routerbench_gpt4_vs_llama2_70b": (0.622, 33.2),
    "routerbench_gpt4_vs_gpt35": (0.614, 33.9),
    "alpacaeval1_gpt4_vs_llama2_7b": (0.563, 42.7),
    "arenabench_v1_gpt4turbo_vs_mixtral": (0.467, 56.8),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DIR)
    parser.add_argument("--cv", type=int, default=5)
    parser.add_argument("--ngram-max", type=int, default=READ_WINDOW.ngram_max)
    parser.add_argument("--head-chars", type=int, default=READ_WINDOW.head_chars,
                        help="Characters read from a long prompt's start (with --tail-chars: what the decision reads).")
    parser.add_argument("--tail-chars", type=int, default=READ_WINDOW.tail_chars)
    parser.add_argument("--only", default="", help="Only files whose name contains this.")
    parser.add_argument("--no-word-vectors", action="store_true", help="N-grams and structure only.")
    parser.add_argument("--hints", action="store_true", help="Each row's domain as its task hint.")
    parser.add_argument("--seeds", type=int, default=1, help="Repeat with this many shuffles (mean and sd).")
    args = parser.parse_args()
    files = sorted(args.data_dir.glob("*.jsonl"))
    if not files:
        sys.exit(f"no router data in {args.data_dir} (see issue #16: the folder is beside the project, never in it)")
    settings = FeatureSettings(ngram_max=args.ngram_max, head_chars=args.head_chars, tail_chars=args.tail_chars)
    features = RouterFeatures(settings, 0.0 if args.no_word_vectors else 1.0, args.hints)
    print("| file | rows | APGR | CPT(50%) | baseline APGR / CPT(50%) | seconds |")
    print("|---|---:|---:|---:|---|---:|")
    for path in files:
        if args.only not in path.stem:
            continue
        examples = load(path)
        started = time.perf_counter()
        results = [evaluate(cross_validated_scores(examples, args.cv, seed=seed, features=features), examples)
                   for seed in range(args.seeds)]
        base = BASELINES.get(path.stem)
        shown = f"{base[0]:.3f} / {base[1]:.1f}%" if base else "-"
        apgr, cpt50 = _spread([r.apgr for r in results], 3), _spread([r.cpt50 for r in results], 1)
        print(f"| {path.stem} | {len(examples):,} | {apgr} | {cpt50}% | {shown} | "
              f"{time.perf_counter() - started:.0f} |", flush=True)


def _spread(values: list[float], digits: int) -> str:
    """One value as it is; several as mean ± standard deviation."""
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{mean(values):.{digits}f} ± {stdev(values):.{digits}f}"


if __name__ == "__main__":
    main()
