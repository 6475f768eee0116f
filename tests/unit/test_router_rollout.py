"""Task hints, shadow decisions and the serving/shadow comparison (issue #16), without processes."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from gateway.pipeline import Answer
from gateway.stages.router import task_hint
from gateway.stages.router_compare import on_labels, projected, shadowed
from gateway.stages.router_deployments import Deployed
from router.data import Example
from router.model import load
from router.train import fit
from tests.support.fakes import harness, settings
from tests.support.router_data import synthetic_examples

HARD = {"model": "auto", "messages": [{"role": "user", "content": "prove that the sum of seven odd numbers is a square"}],
        "max_tokens": 4}


def test_the_task_hint_is_read_and_taken_out_of_the_body() -> None:
    body = {"model": "auto", "metadata": {"tollgate_task": "math", "user": "u1"}}
    assert task_hint(body) == ("math", {"model": "auto", "metadata": {"user": "u1"}})
    assert task_hint({"metadata": {"tollgate_task": "code"}}) == ("code", {})
    assert task_hint({"metadata": {"tollgate_task": 7}}) == (None, {})  # not text: ignored, still removed
    plain = {"model": "auto", "metadata": {"user": "u1"}}
    assert task_hint(plain) == (None, plain)


@pytest.fixture(scope="module")
def routers(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("routers")
    examples = synthetic_examples(300)
    fit(examples, regularization=1.0, embedding_scale=0.0).save(folder / "router.json")
    fit([Example(e.text, e.strong, e.weak) for e in examples], regularization=1.0, embedding_scale=0.0).save(folder / "contrary.json")
    return folder / "router.json", folder / "contrary.json"


def test_a_shadow_router_is_recorded_beside_the_decision_and_never_acted_on(routers: tuple[Path, Path]) -> None:
    artifact, contrary = routers
    h = harness(config=settings(router={"artifact": str(artifact), "cheap": "cheap", "flagship": "flagship"}))
    router = h.pipeline.router
    router.deployments = replace(router.deployments, shadow=Deployed("cand1234", load(contrary)))
    answer = _run(h.pipeline.serve(h.incoming(HARD | {"metadata": {"tollgate_task": "math"}})))
    assert isinstance(answer, Answer) and answer.body["model"] == "flagship"  # the serving router's decision
    record = h.accounting.records[0]
    assert record.router_version == router.configured.version and record.shadow_version == "cand1234"
    assert record.shadow_model == "cheap" and record.shadow_score is not None and record.shadow_score < 0.5
    (url, sent), = h.transports["large"].sent
    assert b"tollgate_task" not in sent and b"metadata" not in sent  # the hint never goes upstream
    explicit = _run(h.pipeline.serve(h.incoming(HARD | {"model": "cascade"})))
    assert isinstance(explicit, Answer) and h.accounting.records[1].shadow_version == ""  # a cascade by name: no decision


def test_a_router_trained_with_hints_uses_them_and_one_without_ignores_them(tmp_path: Path) -> None:
    from router.features import RouterFeatures

    examples = [Example(f"question number {i}", 0.0, 1.0 if i % 2 else 0.0, domain="math" if i % 2 else "chat")
                for i in range(200)]
    hinted = fit(examples, RouterFeatures(hints=True), regularization=1.0)
    assert hinted.score("question number 5", "math") > 0.8 > 0.2 > hinted.score("question number 5", "chat")
    plain = fit(examples, RouterFeatures(), regularization=1.0)
    assert plain.score("question number 5", "math") == plain.score("question number 5")
    hinted.save(tmp_path / "hinted.json")
    assert json.loads((tmp_path / "hinted.json").read_text())["features"]["hints"] is True
    assert load(tmp_path / "hinted.json").score("question number 5", "MATH ") == pytest.approx(hinted.score("question number 5", "math"), abs=1e-5)


def test_word_vectors_are_chosen_by_cross_validation_and_saved_with_their_scale(tmp_path: Path) -> None:
    from router.train import EMBEDDING_MARGIN

    model = fit(synthetic_examples(300), regularization=1.0)
    tried = model.metadata["selection_cv_apgr"]
    assert set(tried) == {"C=1,vectors=0", "C=1,vectors=1"}
    chosen = tried[f"C=1,vectors={model.metadata['word_vectors']:g}"]
    if model.metadata["word_vectors"]:  # kept only when they win by the margin
        assert chosen >= tried["C=1,vectors=0"] + EMBEDDING_MARGIN
    else:
        assert tried["C=1,vectors=1"] < chosen + EMBEDDING_MARGIN
    with_vectors = fit(synthetic_examples(300), regularization=1.0, embedding_scale=2.0)
    with_vectors.save(tmp_path / "r.json")
    document = json.loads((tmp_path / "r.json").read_text())
    assert document["format"] == "tollgate-router/4" and document["features"]["embedding"]["scale"] == 2.0
    reloaded = load(tmp_path / "r.json")
    texts = [e.text for e in synthetic_examples(20, seed=9)] + ["Few-shot example.\n\nThe question: why is the sky blue?"]
    assert [reloaded.score(t) for t in texts] == pytest.approx([with_vectors.score(t) for t in texts], abs=1e-5)
    # scoring through per-word projections equals the dot product with the features training saw
    from router.features import feature_row, prompt_features

    for text in texts:
        columns, values = feature_row(prompt_features(text, None, with_vectors.features), with_vectors.features)
        z = with_vectors.bias + float(with_vectors.dense[columns] @ values)
        assert with_vectors.score(text) == pytest.approx(1 / (1 + math.exp(-z)), abs=1e-9)


def test_the_shipped_format_3_router_still_loads() -> None:
    from gateway.ops.demo_stack import DEFAULT_ROUTER

    assert json.loads(DEFAULT_ROUTER.read_text())["format"] in ("tollgate-router/3", "tollgate-router/4")
    assert 0 < load(DEFAULT_ROUTER).score("prove the Riemann hypothesis") < 1


def _record(routed: str, shadow: str, cost: float, flagship_cost: float, tokens: int = 100, **extra: Any) -> dict[str, Any]:
    return {"status": 200, "cache": "none", "route": "router", "routed_model": routed, "shadow_model": shadow,
            "shadow_version": "v2", "cost_usd": cost, "flagship_cost_usd": flagship_cost, "prompt_tokens": tokens,
            "completion_tokens": 0, **extra}


def test_projected_costs_use_the_flagship_counterfactual_and_the_cheap_models_cost_per_token() -> None:
    records = [
        _record("cheap", "cheap", 0.001, 0.01),  # agree
        _record("cheap", "flagship", 0.002, 0.02),  # the shadow would have paid the flagship counterfactual
        _record("flagship", "cheap", 0.03, 0.03, tokens=300),  # estimated: 300 tokens at the cheap cost per token
        _record("flagship", "flagship", 0.04, 0.04),
    ]
    noise = [_record("cheap", "cheap", 1.0, 1.0, status=500), _record("cheap", "cheap", 0.0, 1.0, cache="exact"),
             {**_record("cheap", "cheap", 1.0, 1.0), "shadow_version": "v1"}]
    kept = shadowed(records + noise, "v2")
    assert kept == records
    result = projected(kept, "cheap", "flagship")
    per_token = (0.001 + 0.002) / 200
    assert result["calls"] == 4 and result["agreement"] == 0.5
    assert result["serving"] == {"flagship_share": 0.5, "cost_usd": pytest.approx(0.073)}
    assert result["shadow"]["flagship_share"] == 0.5 and result["shadow"]["estimated_calls"] == 1
    assert result["shadow"]["cost_usd"] == pytest.approx(0.001 + 0.02 + 300 * per_token + 0.04)
    assert projected([], "cheap", "flagship") == {"calls": 0}


def test_labels_give_both_routers_an_apgr_on_the_same_prompts(routers: tuple[Path, Path]) -> None:
    good, contrary = (load(path) for path in routers)
    labels = [{"prompt": e.text, "weak": e.weak, "strong": e.strong} for e in synthetic_examples(300, seed=4)]
    result = on_labels(labels, good, contrary)
    assert result["labels"] == 300 and result["serving"]["apgr"] > 0.6 > result["shadow"]["apgr"]
    one_sided = [{"prompt": "x", "weak": 1.0, "strong": 1.0}] * 5
    assert on_labels(one_sided, good, contrary)["serving"] is None


def _run(awaitable: Any) -> Any:
    import asyncio

    return asyncio.run(awaitable)
