"""The cascade through the gateway: cheap first, the flagship when the cheap answer looks unsure."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import httpx
import openai
import pytest

from tests.support.stack import ADMIN_KEY, admin, new_tenant_key

SURE = [{"role": "user", "content": "name a colour"}]
UNSURE = [{"role": "user", "content": "[unsure] what will the weather be next year"}]
REFUSED = [{"role": "user", "content": "[refuse] tell me a secret"}]


@pytest.fixture(scope="module")
def cascade_key(gateway: str) -> str:
    return new_tenant_key(gateway, "cascade-tenant")


def _client(gateway: str, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway + "/v1", api_key=key, max_retries=0, timeout=30)


def _records(gateway: str, key: str, count: int) -> list[dict]:
    deadline = time.monotonic() + 5
    while True:
        data = httpx.get(gateway + "/v1/ledger", headers={"authorization": f"Bearer {key}"}).json()["data"]
        if len(data) >= count or time.monotonic() > deadline:
            return data
        time.sleep(0.1)


def test_a_sure_cheap_answer_is_kept_and_an_unsure_one_escalated(gateway: str, cascade_key: str) -> None:
    client = _client(gateway, cascade_key)
    kept = client.chat.completions.with_raw_response.create(model="cascade", messages=SURE, seed=1)
    assert kept.headers["x-tollgate-escalated"] == "false" and kept.headers["x-tollgate-model"] == "cheap"
    assert float(kept.headers["x-tollgate-cascade-confidence"]) >= 0.5
    assert kept.parse().choices[0].logprobs is None  # asked for by the gateway, not by the client
    answers = {}
    for name, messages in (("unsure", UNSURE), ("refused", REFUSED)):
        escalated = client.chat.completions.with_raw_response.create(model="cascade", messages=messages, seed=1)
        assert escalated.headers["x-tollgate-escalated"] == "true" and escalated.parse().model == "flagship"
        assert float(escalated.headers["x-tollgate-cascade-confidence"]) < 0.5
        answers[name] = escalated.parse().choices[0].message.content
    direct = client.chat.completions.create(model="flagship", messages=UNSURE, seed=1)
    assert direct.choices[0].message.content == answers["unsure"]  # the flagship's own answer, untouched


def test_both_calls_of_an_escalation_are_priced_and_recorded_once(gateway: str) -> None:
    key = new_tenant_key(gateway, "cascade-billing")
    client = _client(gateway, key)
    raw = client.chat.completions.with_raw_response.create(model="cascade", messages=UNSURE, seed=2)
    record = _records(gateway, key, 1)[0]
    assert record["route"] == "cascade" and record["escalated"] is True
    assert record["models"] == ["cheap", "flagship"] and record["model"] == "flagship"
    flagship_usage = raw.parse().usage
    assert record["completion_tokens"] > flagship_usage.completion_tokens  # the cheap answer's tokens too
    assert record["cost_usd"] == pytest.approx(float(raw.headers["x-tollgate-cost-usd"]), abs=1e-8)
    assert record["cost_usd"] > record["flagship_cost_usd"]  # escalating costs more than flagship alone
    report = httpx.get(gateway + "/v1/reports/costs", headers={"authorization": f"Bearer {key}"}).json()
    assert report["totals"]["escalated"] == 1 and report["totals"]["escalation_rate"] == 1.0


def test_a_client_that_wants_logprobs_keeps_them(gateway: str, cascade_key: str) -> None:
    answer = _client(gateway, cascade_key).chat.completions.create(model="cascade", messages=SURE, logprobs=True, seed=3)
    assert answer.choices[0].logprobs is not None and answer.choices[0].logprobs.content


def _stream_text(client: openai.OpenAI, model: str, messages: list, seed: int) -> tuple[str, list, set]:
    chunks = list(client.chat.completions.create(model=model, messages=messages, seed=seed, stream=True,
                                                 stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    return text, chunks, {c.model for c in chunks}


def test_a_stream_holds_back_then_releases_or_switches_to_the_flagship(gateway: str, cascade_key: str) -> None:
    client = _client(gateway, cascade_key)
    kept, kept_chunks, kept_models = _stream_text(client, "cascade", SURE, 4)
    assert kept == _stream_text(client, "cheap", SURE, 4)[0] and kept_models == {"cheap"}
    assert all(c.choices[0].logprobs is None for c in kept_chunks if c.choices)
    switched, chunks, models = _stream_text(client, "cascade", UNSURE, 4)
    assert switched == _stream_text(client, "flagship", UNSURE, 4)[0] and models == {"flagship"}
    assert chunks[-1].usage is not None and chunks[-1].choices == []


def test_the_raw_sse_of_an_escalated_stream_is_one_well_formed_stream(gateway: str, cascade_key: str) -> None:
    body = {"model": "cascade", "messages": UNSURE, "stream": True, "seed": 5}
    with httpx.stream("POST", gateway + "/v1/chat/completions", json=body, timeout=30,
                      headers={"authorization": f"Bearer {cascade_key}"}) as response:
        assert response.headers["x-tollgate-escalated"] == "true"
        lines = [line for line in response.iter_lines() if line]
    assert lines[-1] == "data: [DONE]" and sum(line == "data: [DONE]" for line in lines) == 1
    ids = {json.loads(line[6:])["id"] for line in lines[:-1]}
    assert len(ids) == 1  # every chunk from one upstream answer


def test_the_escalation_threshold_is_live(gateway: str, cascade_key: str) -> None:
    client = _client(gateway, cascade_key)
    with admin(gateway) as api:
        api.put("/admin/router/thresholds", json={"escalation": 0.0})
    time.sleep(0.7)
    try:
        kept = client.chat.completions.with_raw_response.create(model="cascade", messages=UNSURE, seed=6)
        assert kept.headers["x-tollgate-escalated"] == "false"
        with admin(gateway) as api:
            api.put("/admin/router/thresholds", json={"escalation": 1.0})
        time.sleep(0.7)
        escalated = client.chat.completions.with_raw_response.create(model="cascade", messages=SURE, seed=6)
        assert escalated.headers["x-tollgate-escalated"] == "true"
    finally:
        with admin(gateway) as api:
            api.put("/admin/router/thresholds", json={"escalation": None})
        time.sleep(0.7)


def test_requests_for_several_answers_are_routed_not_cascaded(gateway: str) -> None:
    key = new_tenant_key(gateway, "cascade-n2")
    answer = _client(gateway, key).chat.completions.create(model="cascade", messages=SURE, n=2)
    assert len(answer.choices) == 2
    record = _records(gateway, key, 1)[0]
    assert record["route"] == "router" and record["models"] == ["cheap"] and record["escalated"] is False


def test_escalation_outcomes_train_a_router_from_the_ledger(gateway: str, cascade_key: str, tmp_path) -> None:
    client = _client(gateway, cascade_key)
    for index in range(6):
        client.chat.completions.create(model="cascade", messages=[{"role": "user", "content": f"name colour {index}"}])
        client.chat.completions.create(model="cascade", messages=[{"role": "user", "content": f"[unsure] guess {index}"}])
    time.sleep(0.3)
    with admin(gateway) as api:
        labels = api.get("/admin/router/labels", params={"limit": 10_000}).json()["data"]
    assert any(l["escalated"] for l in labels) and any(not l["escalated"] for l in labels)
    assert httpx.get(gateway + "/admin/router/labels", headers={"authorization": f"Bearer {cascade_key}"}).status_code == 403
    out = tmp_path / "router.json"
    env = {**os.environ, "TOLLGATE_URL": gateway, "TOLLGATE_ADMIN_KEY": ADMIN_KEY}
    result = subprocess.run([sys.executable, "-m", "gateway", "router", "train", "--from-ledger", "--out", str(out)],
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "cascade outcomes" in result.stdout and json.loads(out.read_text())["format"] == "tollgate-router/4"


def test_collect_then_calibrate_cascade_hits_an_escalation_rate_on_held_out_prompts(gateway: str, tmp_path) -> None:
    """`router collect` through the gateway (the simulated cheap model), then `calibrate-cascade`
    on half of the answers: the other half escalates at the requested rate, within 5 points."""
    from router.dataset import build

    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"id": r["id"], "prompt": r["prompt"], "answer": "-"}) + "\n"
                               for r in build(1200, seed=3)))
    answers = tmp_path / "answers.jsonl"
    env = {**os.environ, "TOLLGATE_URL": gateway, "TOLLGATE_API_KEY": new_tenant_key(gateway, "collector")}
    collected = subprocess.run([sys.executable, "-m", "gateway", "router", "collect", "--model", "cheap", "--data", str(prompts),
                                "--out", str(answers), "--max-tokens", "32", "--concurrency", "8"],
                               env=env, capture_output=True, text=True, timeout=300)
    assert collected.returncode == 0, collected.stderr
    records = [json.loads(line) for line in answers.read_text().splitlines()]
    assert len(records) >= 1200 and all(0 < r["confidence"] < 1 and r["logprobs"] for r in records)
    for rate in ("0.1", "0.3"):
        calibrated = subprocess.run([sys.executable, "-m", "gateway", "router", "calibrate-cascade", "--data", str(answers),
                                     "--escalation-rate", rate, "--holdout", "0.5", "--json"],
                                    capture_output=True, text=True, timeout=60)
        assert calibrated.returncode == 0, calibrated.stderr
        found = json.loads(calibrated.stdout)
        assert abs(found["held_out"]["escalation_rate"] - float(rate)) <= 0.05, found


def test_a_retrain_on_labels_no_better_than_chance_is_refused(gateway: str, tmp_path) -> None:
    """Escalations that have nothing to do with the prompt's words (a threshold at the median of
    near-equal confidences) make labels a router cannot learn from: the retrain is refused."""
    probe = _client(gateway, new_tenant_key(gateway, "noise-probe"))
    words = ["river", "lamp", "cloud", "pencil", "garden", "window", "orange", "stone", "music", "bridge"]
    prompts = [f"write one line about the {a} and the {b}" for a in words for b in words]
    with admin(gateway) as api:
        api.put("/admin/router/thresholds", json={"escalation": 0.0})
    time.sleep(0.7)
    try:
        seen = sorted(float(probe.chat.completions.with_raw_response.create(
            model="cascade", messages=[{"role": "user", "content": p}], max_tokens=16).headers["x-tollgate-cascade-confidence"])
            for p in prompts[:20])
        with admin(gateway) as api:
            api.put("/admin/router/thresholds", json={"escalation": seen[10]})
        time.sleep(0.7)
        noisy = _client(gateway, new_tenant_key(gateway, "noise"))
        escalated = sum(noisy.chat.completions.with_raw_response.create(
            model="cascade", messages=[{"role": "user", "content": p}], max_tokens=16).headers["x-tollgate-escalated"] == "true"
            for p in prompts[20:])
        assert 20 <= escalated <= 60
    finally:
        with admin(gateway) as api:
            api.put("/admin/router/thresholds", json={"escalation": 0.5})
        time.sleep(0.7)
    out = tmp_path / "router.json"
    env = {**os.environ, "TOLLGATE_URL": gateway, "TOLLGATE_ADMIN_KEY": ADMIN_KEY}
    refused = subprocess.run([sys.executable, "-m", "gateway", "router", "train", "--from-ledger", "--tenant", "noise",
                              "--out", str(out)], env=env, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 1 and "below --min-apgr" in refused.stderr and not out.exists(), refused.stdout + refused.stderr
    assert "80 cascade outcomes" in refused.stdout
