"""Cascade confidence and threshold calibration (pure), and the calibrate/eval CLI."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from router import calibrate
from router.confidence import assess
from router.data import Example
from tests.support import ROOT
from tests.support.router_data import synthetic_examples
from wire.texts import choice_logprobs


def test_confidence_combines_mean_and_worst_token_probability() -> None:
    sure = assess("Paris is the capital.", [-0.01, -0.02, -0.05], "stop")
    assert sure.reason == "logprobs" and sure.score == pytest.approx(0.7 * math.exp(-0.08 / 3) + 0.3 * math.exp(-0.05))
    one_wild_guess = assess("Paris is the capital.", [-0.01, -0.02, -4.0], "stop")
    assert one_wild_guess.score < sure.score - 0.25


@pytest.mark.parametrize("text, finish, reason", [
    ("I'm sorry, but I can't help with that.", "stop", "refusal"),
    ("As an AI language model, I cannot", "stop", "refusal"),
    ("", "stop", "empty"),
    ("The answer is", "length", "truncated"),
])
def test_plain_signals_score_zero(text: str, finish: str, reason: str) -> None:
    result = assess(text, [-0.01] * 5, finish)
    assert (result.score, result.reason) == (0.0, reason)


def test_answers_without_logprobs_rest_on_plain_signals_and_tool_calls_are_not_empty() -> None:
    assert assess("fine", [], "stop").reason == "no_logprobs"
    assert assess("", [-0.1], "tool_calls", has_tool_calls=True).reason == "logprobs"
    chat = {"logprobs": {"content": [{"token": "a", "logprob": -0.5}, {"token": "b", "logprob": -0.25}]}}
    legacy = {"logprobs": {"token_logprobs": [-0.5, None, -0.25]}}
    assert choice_logprobs(chat) == choice_logprobs(legacy) == [-0.5, -0.25]


def _examples() -> tuple[list[float], list[Example]]:
    scores = [0.9, 0.8, 0.8, 0.6, 0.4, 0.3, 0.2, 0.1]
    examples = [Example(str(i), weak, strong) for i, (weak, strong) in
                enumerate([(0, 1), (0, 1), (1, 1), (0, 1), (1, 1), (1, 1), (0, 0), (1, 1)])]
    return scores, examples


def test_calibration_to_a_share_of_strong_calls_never_exceeds_it() -> None:
    scores, examples = _examples()
    assert calibrate.for_strong_share(0.25, scores, examples).threshold == 0.9  # 0.8 is tied: 3 calls > 25%
    half = calibrate.for_strong_share(0.5, scores, examples)
    assert (half.threshold, half.strong_share, half.quality) == (0.6, 0.5, 7 / 8)
    assert calibrate.for_strong_share(0.0, scores, examples).strong_share == 0.0
    assert calibrate.for_strong_share(1.0, scores, examples).strong_share == 1.0


def test_calibration_to_a_quality_or_a_cost() -> None:
    scores, examples = _examples()
    best = calibrate.for_min_quality(7 / 8, scores, examples)
    assert (best.threshold, best.strong_share) == (0.6, 0.5)
    assert calibrate.for_min_quality(0.5, scores, examples).strong_share == 0.0  # weak alone reaches it
    with pytest.raises(ValueError):
        calibrate.for_min_quality(0.95, scores, examples)
    priced = calibrate.for_max_cost(0.0055, (0.001, 0.01), scores, examples)  # allows exactly 50% strong
    assert priced.strong_share == 0.5 and priced.cost_per_call_usd == pytest.approx(0.0055)


def test_calibrate_and_priced_eval_from_the_cli(tmp_path: Path) -> None:
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps({"prompt": e.text, "weak": e.weak, "strong": e.strong}) + "\n"
                            for e in synthetic_examples(300, seed=3)))
    run = lambda *args: subprocess.run([sys.executable, "-m", "gateway", "router", *args], capture_output=True,  # noqa: E731
                                       text=True, timeout=120)
    result = run("calibrate", "--data", str(data), "--cv", "3", "--strong-fraction", "0.3", "--json")
    assert result.returncode == 0, result.stderr
    chosen = json.loads(result.stdout)
    assert chosen["strong_share"] <= 0.3 and 0 <= chosen["threshold"] <= 1
    plot = tmp_path / "curve.svg"
    priced = run("eval", "--data", str(data), "--cv", "3", "--cheap-cost-usd", "0.001", "--strong-cost-usd", "0.01",
                 "--plot", str(plot), "--json")
    assert priced.returncode == 0, priced.stderr
    curve = json.loads(priced.stdout)["curve"]
    assert curve[0]["cost_per_call_usd"] == pytest.approx(0.001) and curve[-1]["cost_per_call_usd"] == pytest.approx(0.01)
    assert plot.read_text().startswith("<svg") and "polyline" in plot.read_text()
    bad = run("calibrate", "--data", str(data), "--cv", "3", "--max-cost-usd", "0.1")
    assert bad.returncode == 2 and "needs --cheap-cost-usd" in bad.stderr


def _default_router_data() -> list:
    """The default router's training data: the project's dataset, then the real Arena prompts."""
    from router import dataset
    from router.data import parse_record
    from tests.unit.test_router_real_data import DATA

    arena = DATA / "arenabench_v1_gpt4turbo_vs_mixtral.jsonl"
    if not arena.exists():
        pytest.skip(f"the default router is trained on {arena} too (issue #16); it is not here")
    return [parse_record(r) for r in dataset.build() + dataset.graded_records(arena)]


def test_the_shipped_default_router_tells_easy_from_hard() -> None:
    from router.model import load

    shipped = load(ROOT / "router" / "data" / "default-router.json")
    assert shipped.metadata["examples"] == 6293 and shipped.metadata["cross_validated"]["folds"] == 5
    hard = "Which product forms when the given diene undergoes a [4+2] cycloaddition with maleic anhydride at 80 C?"
    assert shipped.score("hi there!") < 0.2 and shipped.score(hard) > 0.5


def test_the_shipped_default_router_was_trained_on_exactly_its_documented_data() -> None:
    from router.model import load
    from router.train import data_hash

    shipped = load(ROOT / "router" / "data" / "default-router.json")
    assert shipped.metadata["data_sha256"] == data_hash(_default_router_data())


@pytest.mark.slow
def test_the_shipped_default_router_is_reproducible_from_its_data() -> None:
    from router.model import load
    from router.train import fit

    shipped = load(ROOT / "router" / "data" / "default-router.json")
    rebuilt = fit(_default_router_data())
    probes = ["hi there!", "prove that the sum of 7 consecutive odd numbers is a perfect square",
              "call the get_weather tool for Oslo and report the temperature"]
    assert [round(rebuilt.score(p), 4) for p in probes] == [round(shipped.score(p), 4) for p in probes]


def test_the_live_curve_is_the_share_of_scores_at_or_above_each_threshold() -> None:
    from router.calibrate import share_at_or_above

    assert share_at_or_above([0.1, 0.4, 0.4, 0.9], [0.0, 0.4, 0.5, 1.0]) == [1.0, 0.75, 0.25, 0.0]
    assert share_at_or_above([], [0.5]) == [0.0]
