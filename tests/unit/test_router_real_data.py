"""The router on real per-prompt results (issue #16): ``../shared/router-data`` beside the project
(or ``TOLLGATE_ROUTER_DATA``), never committed. Without it these tests skip and say so.

The default suite runs the small Arena file (293 prompts, about half a minute); ``make test-slow``
runs every file against the baselines of the folder's README (5-fold cross-validation, as
``bench/router_real_data.py`` prints it) and rebuilds the shipped default router."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bench.router_real_data import BASELINES, DEFAULT_DIR  # the folder's README, 5-fold
from router.data import load
from router.evaluate import evaluate
from router.train import cross_validated_scores

DATA = Path(os.environ.get("TOLLGATE_ROUTER_DATA", DEFAULT_DIR))


def _file(stem: str) -> Path:
    path = DATA / f"{stem}.jsonl"
    if not path.exists():
        pytest.skip(f"real router data not found: {path} (issue #16: ../shared/router-data beside the project, "
                    "or set TOLLGATE_ROUTER_DATA)")
    return path


def _beats_baseline(stem: str) -> None:
    examples = load(_file(stem))
    result = evaluate(cross_validated_scores(examples, 5), examples)
    apgr, cpt50 = BASELINES[stem]
    assert result.apgr > apgr and result.cpt50 < cpt50, f"{stem}: {result.apgr:.3f} / {result.cpt50:.1f}%"


def test_the_router_beats_its_old_self_on_real_arena_prompts() -> None:
    _beats_baseline("arenabench_v1_gpt4turbo_vs_mixtral")


# Not yet (issue #16 stays open; docs/router.md says why): within noise of the old router there.
_NOT_YET = {"routerbench_gpt4_vs_mixtral", "routerbench_gpt4_vs_mixtral_qonly", "routerbench_gpt4_vs_llama2_70b"}


@pytest.mark.slow
@pytest.mark.parametrize("stem", [
    pytest.param(stem, marks=pytest.mark.xfail(strict=True, reason="issue #16: at the old router's score, not above"))
    if stem in _NOT_YET else stem
    for stem in sorted(set(BASELINES) - {"arenabench_v1_gpt4turbo_vs_mixtral"})])
def test_the_router_beats_its_old_self_on_every_real_file(stem: str) -> None:
    _beats_baseline(stem)
