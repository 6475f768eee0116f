"""The router's data formats, metrics and training (issue #4, offline part)."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from router import data
from router.evaluate import apgr, cpt, evaluate
from router.model import RouterFileError, load
from router.train import DEFAULT_REGULARIZATION, REGULARIZATION_GRID, cross_validated_scores, fit
from tests.support.router_data import synthetic_examples as _examples
from wire.features import STRUCTURAL, structural, tokens_of, word_hashes


def test_both_formats_and_messages_are_read() -> None:
    examples = data.parse_lines([
        json.dumps({"prompt": "a", "weak": 0, "strong": 1, "domain": "math", "id": 7}),
        json.dumps({"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}], "winner": "tie"}),
        "",
        json.dumps({"prompt": "c", "winner": "weak"}),
    ])
    assert [(e.text, e.weak, e.strong, e.strong_wins) for e in examples] == [
        ("a", 0.0, 1.0, True), ("s\nu", 1.0, 1.0, False), ("c", 1.0, 0.0, False)]
    assert examples[0].domain == "math" and examples[0].id == "7"


@pytest.mark.parametrize("line, message", [
    ("{not json", "2:"), (json.dumps({"weak": 1, "strong": 0}), "prompt"),
    (json.dumps({"prompt": "p", "winner": "both"}), "winner"), (json.dumps({"prompt": "p", "weak": "x", "strong": 1}), "numbers"),
    (json.dumps(["a"]), "object"),
])
def test_bad_lines_are_named_by_line(line: str, message: str) -> None:
    with pytest.raises(data.DataError, match=message):
        data.parse_lines([json.dumps({"prompt": "ok", "winner": "tie"}), line], "d.jsonl")


def test_random_scores_give_apgr_near_one_half_and_an_oracle_much_more() -> None:
    examples = _examples(2000)
    rng = random.Random(5)
    assert evaluate([rng.random() for _ in examples], examples).apgr == pytest.approx(0.5, abs=0.06)
    oracle = evaluate([e.strong - e.weak + rng.random() * 0.01 for e in examples], examples)
    assert oracle.apgr > 0.85 and oracle.cpt50 < 30


def test_curve_runs_from_all_strong_to_none_over_eleven_thresholds() -> None:
    examples = _examples(300)
    rng = random.Random(2)
    curve = evaluate([rng.random() for _ in examples], examples).curve
    assert len(curve) == 11
    assert curve[0]["strong_share"] == 0.0 and curve[-1]["strong_share"] == 1.0


def test_apgr_and_cpt_on_a_hand_made_curve() -> None:
    curve = [{"strong_share": 0.0, "quality": 0.5}, {"strong_share": 0.2, "quality": 0.8}, {"strong_share": 1.0, "quality": 0.9}]
    # area above 0.5: 0.2 x 0.15 + 0.8 x 0.35 = 0.31; gap 0.4
    assert apgr(curve, 0.5, 0.9) == pytest.approx(0.31 / 0.4)
    assert cpt(curve, 0.5, 0.9, 0.5) == pytest.approx(100 * 0.2 * (0.2 / 0.3))
    assert cpt(curve, 0.5, 0.9, 0.8) == pytest.approx(100 * (0.2 + 0.8 * (0.02 / 0.1)))  # target 0.82


def test_cross_validated_router_beats_random_and_artifact_is_plain_json(tmp_path: Path) -> None:
    examples = _examples(600)
    result = evaluate(cross_validated_scores(examples, 5), examples)
    assert result.apgr > 0.7 and result.cpt50 < 30
    model = fit(examples)
    path = tmp_path / "router.json"
    model.save(path)
    document = json.loads(path.read_text())
    assert document["format"] == "tollgate-router/4" and document["metadata"]["data_sha256"]
    reloaded = load(path)
    assert [reloaded.score(e.text) for e in examples[:20]] == pytest.approx([model.score(e.text) for e in examples[:20]], abs=1e-5)
    (tmp_path / "bad.json").write_text('{"format": "pickle"}')
    with pytest.raises(RouterFileError):
        load(tmp_path / "bad.json")


def test_router_cli_train_and_eval(tmp_path: Path) -> None:
    data_file = tmp_path / "train.jsonl"
    data_file.write_text("\n".join(json.dumps({"prompt": e.text, "weak": e.weak, "strong": e.strong}) for e in _examples(400)))
    run = lambda *args: subprocess.run([sys.executable, "-m", "gateway", "router", *args], capture_output=True, text=True, timeout=120)
    trained = run("train", "--data", str(data_file), "--out", str(tmp_path / "r.json"), "--cv", "3")
    assert trained.returncode == 0, trained.stderr
    held_out = json.loads((tmp_path / "r.json").read_text())["metadata"]["cross_validated"]
    assert held_out["folds"] == 3 and 0.6 < held_out["apgr"] < json.loads((tmp_path / "r.json").read_text())["metadata"]["in_sample"]["apgr"]
    scored = json.loads(run("eval", "--data", str(data_file), "--router", str(tmp_path / "r.json"), "--json").stdout)
    assert {"apgr", "cpt50", "cpt80", "curve"} <= set(scored) and scored["apgr"] > 0.7
    assert json.loads(run("eval", "--data", str(data_file), "--cv", "3", "--json").stdout)["apgr"] > 0.6
    assert run("eval", "--data", str(data_file)).returncode == 2
    (tmp_path / "broken.jsonl").write_text('{"prompt": "x"}\n')
    failed = run("train", "--data", str(tmp_path / "broken.jsonl"), "--out", str(tmp_path / "x.json"))
    assert failed.returncode == 2 and "broken.jsonl:1" in failed.stderr


def test_regularization_is_chosen_by_cross_validation_on_the_training_data() -> None:
    examples = _examples(500)
    model = fit(examples, embedding_scale=0.0)
    tried = model.metadata["selection_cv_apgr"]
    assert set(tried) == {f"C={c:g},vectors=0" for c in REGULARIZATION_GRID}
    assert tried[f"C={model.metadata['regularization']:g},vectors=0"] == max(tried.values())
    fixed = fit(examples, regularization=0.05, embedding_scale=0.0)
    assert fixed.metadata["regularization"] == 0.05 and fixed.metadata["selection_cv_apgr"] == {}
    tiny = [data.Example(f"prompt {i}", 0.0, float(i < 3)) for i in range(12)]  # three wins cannot fill three folds
    assert fit(tiny).metadata["regularization"] == DEFAULT_REGULARIZATION


def test_word_problem_steps_show_in_numbers_and_sentences() -> None:
    short = "Ana has 3 apples. How many apples does she have?"
    long = ("Ana has 3 apples. She buys 12 more. She gives 2 to each of 4 friends. Then the number doubles. "
            "How many apples does she have?")
    index = {name: i for i, name in enumerate(STRUCTURAL)}
    few, many = (structural(text, tokens_of(text), len(text)) for text in (short, long))
    assert many[index["numbers"]] > few[index["numbers"]] > 0
    assert many[index["sentences"]] > few[index["sentences"]] > 0


def test_word_hashes_are_crc32_whether_memoized_or_not() -> None:
    """A saved router scores the same in every process: memoized words, new words and numbers (never
    memoized) all hash to their CRC32, on the first call and the second."""
    tokens = tokens_of("the café costs 1234 dollars, the zqxjv-unseen word costs 1234 too " + str(random.random()))
    for _ in range(2):
        assert word_hashes(tokens).tolist() == [zlib.crc32(token.encode()) for token in tokens]
    assert word_hashes([]).size == 0


def test_an_artifact_with_other_structural_features_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "router.json"
    fit(_examples(200), regularization=1.0).save(path)
    document = json.loads(path.read_text())
    document["features"]["structural"] = document["features"]["structural"][:-2]
    path.write_text(json.dumps(document))
    with pytest.raises(RouterFileError, match="structural"):
        load(path)


def test_a_router_reads_the_window_it_was_trained_with(tmp_path: Path) -> None:
    """New routers read a long prompt's first 256 and last 768 characters; an artifact trained with
    another window (1,536 + 512 before 2026-11-30) keeps scoring with its own."""
    new = fit(_examples(200), regularization=1.0)
    path = tmp_path / "router.json"
    new.save(path)
    document = json.loads(path.read_text())
    assert (document["features"]["head_chars"], document["features"]["tail_chars"]) == (256, 768)
    document["features"]["head_chars"], document["features"]["tail_chars"] = 1536, 512
    path.write_text(json.dumps(document))
    old = load(path)
    assert (old.features.settings.head_chars, old.features.settings.tail_chars) == (1536, 512)
    start, end = "hello " * 60, "thanks " * 140  # 360 and 980 characters
    middle = "solve the integral step by step " * 40  # 1,280 characters: only the old window reaches it
    plain = "x " * (len(middle) // 2)  # as long, saying nothing
    assert new.score(start + middle + end) == new.score(start + plain + end)
    assert old.score(start + middle + end) != old.score(start + plain + end)


def test_a_published_result_table_is_imported_and_evaluated(tmp_path: Path) -> None:
    """A CSV with a column per model (booleans as text, long quoted responses) becomes training data."""
    import csv

    table = tmp_path / "results.csv"
    with open(table, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["prompt", "small-model", "big-model", "small-model_response", "subject"])
        for i, e in enumerate(_examples(300)):
            writer.writerow([e.text, str(bool(e.weak)), str(bool(e.strong)), f'step 1, "quoted"\nstep {i}', "maths"])
    out = tmp_path / "data.jsonl"
    run = lambda *args: subprocess.run([sys.executable, "-m", "gateway", "router", *args], capture_output=True, text=True, timeout=120)
    imported = run("import", "--table", str(table), "--out", str(out), "--weak-column", "small-model",
                   "--strong-column", "big-model", "--domain-column", "subject")
    assert imported.returncode == 0, imported.stderr
    examples = data.load(out)
    assert [(e.text, e.weak, e.strong) for e in examples] == [(e.text, e.weak, e.strong) for e in _examples(300)]
    assert examples[0].domain == "maths"
    assert json.loads(run("eval", "--data", str(out), "--cv", "3", "--json").stdout)["apgr"] > 0.6
    (tmp_path / "bad.jsonl").write_text(json.dumps({"prompt": "a", "w": True, "s": 1}) + "\n"
                                        + json.dumps({"prompt": "b", "w": "maybe", "s": 0}) + "\n")
    failed = run("import", "--table", str(tmp_path / "bad.jsonl"), "--out", str(out), "--weak-column", "w", "--strong-column", "s")
    assert failed.returncode == 2 and "row 2" in failed.stderr
    missing = run("import", "--table", str(table), "--out", str(out), "--weak-column", "nope", "--strong-column", "big-model")
    assert missing.returncode == 2 and "nope" in missing.stderr


def test_build_dataset_appends_a_graded_file_scaled_and_refuses_a_malformed_one(tmp_path: Path) -> None:
    graded = tmp_path / "graded.jsonl"
    graded.write_text(json.dumps({"prompt": "real prompt", "weak": 3.0, "strong": 9.0}) + "\n")
    run = lambda *args: subprocess.run([sys.executable, "-m", "gateway", "router", "build-dataset", *args],
                                       capture_output=True, text=True, timeout=120)
    built = run("--out", str(tmp_path / "d.jsonl"), "--size", "100", "--add-graded", str(graded))
    assert built.returncode == 0, built.stderr
    last = json.loads((tmp_path / "d.jsonl").read_text().splitlines()[-1])
    assert (last["prompt"], last["weak"], last["strong"], last["domain"]) == ("real prompt", 0.3, 0.9, "arena")
    graded.write_text('{"prompt": "no grades"}\n')
    refused = run("--out", str(tmp_path / "e.jsonl"), "--add-graded", str(graded))
    assert refused.returncode == 2 and "weak" in refused.stderr and "Traceback" not in refused.stderr
