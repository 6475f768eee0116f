"""The cascade's escalation threshold from labelled cheap answers, answer checkers, the scorers'
separation (AUROC), the simulator's difficulty-dependent sureness, and the CLI around them."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from enginesim.presets import PRESETS
from enginesim.textgen import difficulty, flatten_chat, plan_answer
from router import checkers, escalation
from router.confidence import SCORERS, assess, auroc
from router.escalation import CheapAnswer
from tests.support.prompts import EASY, HARD


def _answers(confidences: list[float], correct: list[bool] | None = None, **extra: float) -> list[CheapAnswer]:
    correct = correct or [c > 0.5 for c in confidences]
    return [CheapAnswer(c, ok, **extra) for c, ok in zip(confidences, correct, strict=True)]


def test_an_escalation_rate_is_met_with_a_threshold_between_two_answers() -> None:
    answers = _answers([0.1, 0.2, 0.3, 0.4, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99])
    point = escalation.for_escalation_rate(0.3, answers)
    assert point.threshold == pytest.approx(0.35) and point.escalation_rate == 0.3  # halfway from 0.3 to 0.4
    assert escalation.for_escalation_rate(0.0, answers).threshold == 0.0
    assert escalation.for_escalation_rate(1.0, answers).escalation_rate == 1.0
    tied = _answers([0.2, 0.5, 0.5, 0.5, 0.9])
    assert escalation.for_escalation_rate(0.4, tied).escalation_rate == 0.2  # a tie is never split: at most the rate


def test_a_quality_or_a_cost_target_picks_the_fewest_or_the_most_escalations() -> None:
    answers = _answers([0.1, 0.2, 0.3, 0.8, 0.9], [False, False, True, True, True], flagship_correct=1.0,
                       cheap_cost_usd=0.001, flagship_cost_usd=0.01)
    best = escalation.for_min_quality(1.0, answers)
    assert best.escalation_rate == pytest.approx(0.4) and best.quality == 1.0  # the two wrong answers escalate
    assert escalation.for_min_quality(0.6, answers).escalation_rate == 0.0
    budget = escalation.for_max_cost(0.001 + 0.2 * 0.01, answers)
    assert budget.escalation_rate == pytest.approx(0.2) and budget.cost_per_call_usd == pytest.approx(0.003)
    with pytest.raises(ValueError):
        escalation.for_max_cost(0.0005, answers)
    with pytest.raises(ValueError):
        escalation.for_min_quality(1.0, _answers([0.1, 0.9], [False, True], flagship_correct=0.0))


def test_a_threshold_calibrated_on_half_the_prompts_holds_on_the_other_half() -> None:
    rng = random.Random(5)
    answers = [CheapAnswer(rng.betavariate(4, 2), rng.random() < 0.7) for _ in range(2000)]
    fitted, held = escalation.split(answers, 0.5)
    for rate in (0.1, 0.3, 0.5):
        threshold = escalation.for_escalation_rate(rate, fitted).threshold
        assert abs(escalation.outcome(threshold, held).escalation_rate - rate) < 0.05


def test_auroc_is_the_chance_a_right_answer_outscores_a_wrong_one() -> None:
    assert auroc([0.9, 0.8, 0.2, 0.1], [True, True, False, False]) == 1.0
    assert auroc([0.1, 0.2, 0.8, 0.9], [True, True, False, False]) == 0.0
    assert auroc([0.5, 0.5], [True, False]) == 0.5
    assert auroc([0.9, 0.1, 0.5], [True, False, True]) == 1.0


def test_every_scorer_reads_logprobs_and_head_and_tail_read_their_end() -> None:
    early_doubt = [-3.0] * 16 + [-0.01] * 40
    assert SCORERS["head"](early_doubt) < 0.1 < 0.9 < SCORERS["tail"](early_doubt)
    for name in SCORERS:
        assert 0.0 < assess("an answer", early_doubt, "stop", scorer=name).score < 1.0


def test_an_answer_capped_by_the_client_is_judged_by_its_logprobs_not_as_truncated() -> None:
    assert assess("one two", [-0.01, -0.02], "length").reason == "truncated"
    capped = assess("one two", [-0.01, -0.02], "length", capped_by_client=True)
    assert capped.reason == "logprobs" and capped.score > 0.9


@pytest.mark.parametrize("name, answer, reference, right", [
    ("exact", " Paris. ", "paris", True), ("exact", "Paris is it", "Paris", False),
    ("prefix", " Buenos Aires, of course", "Buenos Aires", True), ("prefix", " 852", "85", False), ("prefix", " 85\n", "85", True),
    ("contains", "It is Paris.", "paris", True), ("number", "so the total is 1,234.", "1234", True), ("number", "12 then 13", "12", False),
])
def test_checkers(name: str, answer: str, reference: str, right: bool) -> None:
    assert checkers.load(name)(answer, reference) is right


def test_a_checker_can_be_any_function_and_a_bad_name_is_clear() -> None:
    assert checkers.load("router.checkers:exact") is checkers.exact
    with pytest.raises(ValueError, match="unknown checker"):
        checkers.load("fuzzy")
    with pytest.raises(ValueError, match="cannot load"):
        checkers.load("no_such_module:f")


def _confidence(preset: str, prompt: str) -> float:
    plan = plan_answer(flatten_chat([{"role": "user", "content": prompt}]), None, None, [], PRESETS[preset].sureness)
    return assess("".join(t.text for t in plan.tokens), [t.logprob for t in plan.tokens], plan.finish_reason).score


def test_the_simulated_small_model_is_unsure_of_hard_prompts_and_the_large_one_much_less() -> None:
    assert max(difficulty(p) for p in EASY) < 0.1 and min(difficulty(p) for p in HARD) > 0.5
    small_hard = [_confidence("small", p) for p in HARD]
    small_easy = [_confidence("small", p) for p in EASY]
    large_hard = [_confidence("large", p) for p in HARD]
    assert sum(c < 0.5 for c in small_hard) >= 8 and sum(c < 0.5 for c in small_easy) == 0
    assert sum(c < 0.5 for c in large_hard) == 0  # the flagship stays fairly sure


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gateway", "router", *args], capture_output=True, text=True, timeout=120)


def test_calibrate_cascade_from_the_cli_reports_the_held_out_rate(tmp_path: Path) -> None:
    rng = random.Random(9)
    data = tmp_path / "answers.jsonl"
    rows = []
    for _ in range(4000):
        right = rng.random() < 0.6
        rows.append({"confidence": round(min(max(rng.gauss(0.7 if right else 0.4, 0.15), 0), 1), 4), "correct": right,
                     "cheap_cost_usd": 0.0001})
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = _cli("calibrate-cascade", "--data", str(data), "--escalation-rate", "0.25", "--holdout", "0.5",
                  "--flagship-cost-usd", "0.002", "--json")
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert found["escalation_rate"] <= 0.25 and abs(found["held_out"]["escalation_rate"] - 0.25) < 0.05
    assert 0.8 < found["auroc"] < 0.95 and found["cost_per_call_usd"] == pytest.approx(0.0001 + found["escalation_rate"] * 0.002)
    human = _cli("calibrate-cascade", "--data", str(data), "--min-quality", "0.9")
    assert human.returncode == 0 and "router set --escalation" in human.stdout and "AUROC" in human.stdout
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"confidence": "high"}\n')
    refused = _cli("calibrate-cascade", "--data", str(bad), "--escalation-rate", "0.2")
    assert refused.returncode == 2 and "bad.jsonl:1" in refused.stderr
    both = _cli("calibrate-cascade", "--data", str(data), "--escalation-rate", "0.2", "--min-quality", "0.9")
    assert both.returncode == 2 and "exactly one" in both.stderr


def test_a_router_no_better_than_chance_is_not_written_unless_forced(tmp_path: Path) -> None:
    rng = random.Random(4)
    data = tmp_path / "noise.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"say {rng.random():.6f} please", "weak": float(rng.random() < 0.5),
                                        "strong": 1.0}) + "\n" for _ in range(120)))
    out = tmp_path / "router.json"
    refused = _cli("train", "--data", str(data), "--cv", "5", "--out", str(out))
    assert refused.returncode == 1 and "below --min-apgr" in refused.stderr and not out.exists()
    forced = _cli("train", "--data", str(data), "--cv", "5", "--out", str(out), "--force")
    assert forced.returncode == 0 and out.exists() and "cross-validated" in forced.stdout
