"""Retries and fallbacks before the first byte; clean errors after it; nothing hangs."""

from __future__ import annotations

import time

import httpx
import openai
import pytest

MESSAGES = [{"role": "user", "content": "hello"}]


def test_engine_5xx_falls_back_to_the_next_backend(client: openai.OpenAI, flaky: httpx.Client) -> None:
    flaky.post("/sim/faults", json={"error_rate": 1.0})
    raw = client.chat.completions.with_raw_response.create(model="flaky-with-fallback", messages=MESSAGES, max_tokens=5)
    assert raw.headers["x-tollgate-backend"] == "small"
    assert raw.parse().model == "flaky-with-fallback"


def test_engine_5xx_falls_back_for_streams_too(client: openai.OpenAI, flaky: httpx.Client) -> None:
    flaky.post("/sim/faults", json={"error_rate": 1.0})
    chunks = list(client.chat.completions.create(model="flaky-with-fallback", messages=MESSAGES, max_tokens=5, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks)


def test_refused_connection_moves_to_the_next_replica(client: openai.OpenAI) -> None:
    for _ in range(3):  # whichever replica round-robin starts with
        raw = client.chat.completions.with_raw_response.create(model="replica-failover", messages=MESSAGES, max_tokens=3)
        assert raw.parse().choices[0].message.content


def test_no_backend_left_is_a_clean_502(client: openai.OpenAI, flaky: httpx.Client) -> None:
    flaky.post("/sim/faults", json={"error_rate": 1.0})
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="flaky-only", messages=MESSAGES)
    assert caught.value.status_code == 502
    assert caught.value.body["code"] == "upstream_unavailable"
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="unreachable", messages=MESSAGES, stream=True)
    assert caught.value.status_code == 502


def test_engine_refusing_connections_at_run_time(client: openai.OpenAI, flaky: httpx.Client) -> None:
    flaky.post("/sim/faults", json={"refuse_connections_s": 1.5})
    time.sleep(0.3)
    raw = client.chat.completions.with_raw_response.create(model="flaky-with-fallback", messages=MESSAGES, max_tokens=3)
    assert raw.headers["x-tollgate-backend"] == "small"
    time.sleep(1.8)


def test_slow_first_byte_times_out_and_falls_back(client: openai.OpenAI, flaky: httpx.Client) -> None:
    flaky.post("/sim/faults", json={"extra_latency_ms": 4000})  # flaky's read timeout is 2 s
    started = time.monotonic()
    raw = client.chat.completions.with_raw_response.create(model="flaky-with-fallback", messages=MESSAGES, max_tokens=3)
    assert raw.headers["x-tollgate-backend"] == "small"
    assert time.monotonic() - started < 4


def test_stream_cut_midway_ends_with_an_error_event(client: openai.OpenAI, flaky: httpx.Client) -> None:
    flaky.post("/sim/faults", json={"drop_stream_after_tokens": 3})
    received = []
    with pytest.raises(openai.APIError) as caught:
        for chunk in client.chat.completions.create(model="flaky-only", messages=MESSAGES, max_tokens=50, stream=True):
            received.append(chunk)
    assert received, "the first tokens reached the client before the cut"
    assert "upstream" in caught.value.message


def test_whole_answer_cut_midway_is_retried_on_the_fallback(client: openai.OpenAI, flaky: httpx.Client) -> None:
    """Headers sent, then the connection dropped: nothing reached the client, so the next backend answers."""
    flaky.post("/sim/faults", json={"drop_stream_after_tokens": 2})
    raw = client.chat.completions.with_raw_response.create(model="flaky-with-fallback", messages=MESSAGES, max_tokens=50)
    assert raw.headers["x-tollgate-backend"] == "small" and raw.parse().choices[0].message.content


def test_whole_answer_cut_midway_is_retried_or_502(client: openai.OpenAI, flaky: httpx.Client) -> None:
    flaky.post("/sim/faults", json={"drop_stream_after_tokens": 2})
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="flaky-only", messages=MESSAGES, max_tokens=50)
    assert caught.value.status_code == 502


def test_upstream_client_error_is_passed_back_as_4xx(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:  # vLLM's own extension, checked by the engine
        client.chat.completions.create(model="cheap", messages=MESSAGES, extra_body={"top_k": -5})
    assert "top_k" in caught.value.message


def test_slow_upstream_everywhere_is_a_504_within_the_read_timeout(client: openai.OpenAI, flaky: httpx.Client) -> None:
    flaky.post("/sim/faults", json={"extra_latency_ms": 3000})  # flaky's read timeout is 2 s
    started = time.monotonic()
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="flaky-only", messages=MESSAGES, max_tokens=3)
    assert caught.value.status_code == 504 and caught.value.body["code"] == "upstream_timeout"
    assert time.monotonic() - started < 2 * 2 + 1  # two attempts at most, each bounded


def _sim_metric(base: str, name: str) -> float:
    line = next(l for l in httpx.get(base + "/metrics").text.splitlines() if l.startswith(name + "{"))
    return float(line.split()[-1])


def test_client_disconnect_mid_stream_cancels_the_upstream(gateway: str, tenant_key: str, sims: dict[str, str]) -> None:
    from enginesim.textgen import flatten_chat, plan_answer

    messages = [{"role": "user", "content": "tell me a long story"}]
    seed = next(s for s in range(1000) if len(plan_answer(flatten_chat(messages), s, None, []).tokens) >= 80)
    generated_before = _sim_metric(sims["slow"], "vllm:generation_tokens_total")
    body = {"model": "slow", "messages": messages, "seed": seed, "stream": True}
    with httpx.stream("POST", gateway + "/v1/chat/completions", json=body,
                      headers={"authorization": f"Bearer {tenant_key}"}, timeout=10) as response:
        received = 0
        for line in response.iter_lines():
            received += line.startswith("data:")
            if received >= 3:
                break
    deadline = time.monotonic() + 1.0  # the whole answer would take about 2 s more (80+ tokens)
    while time.monotonic() < deadline and _sim_metric(sims["slow"], "vllm:num_requests_running") > 0:
        time.sleep(0.05)
    assert _sim_metric(sims["slow"], "vllm:num_requests_running") == 0
    assert _sim_metric(sims["slow"], "vllm:generation_tokens_total") - generated_before < 60


def test_usage_is_estimated_when_the_engine_reports_none(client: openai.OpenAI, flaky: httpx.Client) -> None:
    flaky.post("/sim/faults", json={"omit_usage": True})
    whole = client.chat.completions.create(model="flaky-only", messages=MESSAGES, max_tokens=6)
    assert whole.usage.completion_tokens >= 6 and whole.usage.prompt_tokens > 0
    assert whole.usage.model_extra.get("estimated") is True
    chunks = list(client.chat.completions.create(model="flaky-only", messages=MESSAGES, max_tokens=6, stream=True,
                                                 stream_options={"include_usage": True}))
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 6
