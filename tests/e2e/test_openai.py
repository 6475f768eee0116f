"""The official openai client against the gateway: sync, async, streaming, and pass-through."""

from __future__ import annotations

import asyncio
import time

import openai
import pytest

from tests.support.stack import last_request

MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is a KV cache?"}]


def test_chat_completion_answers_with_usage_and_headers(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(model="cheap", messages=MESSAGES, max_tokens=20)
    completion = raw.parse()
    assert completion.model == "cheap"
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].message.content
    assert completion.usage.prompt_tokens > 0
    assert 0 < completion.usage.completion_tokens <= 20
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens
    assert raw.headers["x-tollgate-model"] == "cheap"
    assert raw.headers["x-tollgate-backend"] == "small"
    assert float(raw.headers["x-tollgate-cost-usd"]) >= 0
    assert len(raw.headers["x-request-id"]) >= 16


def test_answers_are_deterministic_and_repeated_prefix_is_cached(client: openai.OpenAI) -> None:
    long_system = {"role": "system", "content": "You are a careful assistant. " * 40}
    first = client.chat.completions.create(model="flagship", messages=[long_system, {"role": "user", "content": "a"}], seed=7)
    second = client.chat.completions.create(model="flagship", messages=[long_system, {"role": "user", "content": "a"}], seed=7,
                                            extra_headers={"cache-control": "no-cache"})  # past the response cache
    assert first.choices[0].message.content == second.choices[0].message.content
    assert second.usage.prompt_tokens_details.cached_tokens >= 16 * ((second.usage.prompt_tokens - 16) // 16)


def test_stream_with_usage_ends_with_a_usage_chunk(client: openai.OpenAI) -> None:
    chunks = list(client.chat.completions.create(
        model="cheap", messages=MESSAGES, max_tokens=8, stream=True, stream_options={"include_usage": True}
    ))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text
    assert all(c.model == "cheap" for c in chunks)
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 8
    assert chunks[-2].choices[0].finish_reason == "length"


def test_stream_without_usage_has_no_usage_chunk(client: openai.OpenAI) -> None:
    chunks = list(client.chat.completions.create(model="cheap", messages=MESSAGES, max_tokens=5, stream=True))
    assert all(c.choices for c in chunks)
    assert all(c.usage is None for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "length"


def test_stream_text_matches_the_whole_answer(client: openai.OpenAI) -> None:
    whole = client.chat.completions.create(model="cheap", messages=MESSAGES, seed=3)
    streamed = client.chat.completions.create(model="cheap", messages=MESSAGES, seed=3, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in streamed) == whole.choices[0].message.content


def test_async_client_concurrent_calls(gateway: str, tenant_key: str) -> None:
    async def run() -> list[str]:
        async with openai.AsyncOpenAI(base_url=gateway + "/v1", api_key=tenant_key, max_retries=0) as client:
            async def one(i: int) -> str:
                answer = await client.chat.completions.create(
                    model="flagship", messages=[{"role": "user", "content": f"question {i}"}], max_tokens=6
                )
                return answer.choices[0].message.content or ""

            async def streamed() -> str:
                stream = await client.chat.completions.create(
                    model="cheap", messages=MESSAGES, max_tokens=4, stream=True
                )
                return "".join([c.choices[0].delta.content or "" async for c in stream])

            return await asyncio.gather(*(one(i) for i in range(12)), streamed())

    answers = asyncio.run(run())
    assert len(answers) == 13 and all(answers)


def test_legacy_completions_whole_and_streamed(client: openai.OpenAI) -> None:
    completion = client.completions.create(model="cheap", prompt="Once upon a time", max_tokens=7)
    assert completion.model == "cheap" and completion.choices[0].text
    assert completion.usage.completion_tokens == 7
    streamed = list(client.completions.create(model="cheap", prompt="Once upon a time", max_tokens=7, stream=True))
    assert "".join(c.choices[0].text for c in streamed) == completion.choices[0].text


def test_models_lists_configured_models(client: openai.OpenAI) -> None:
    ids = {m.id for m in client.models.list()}
    assert {"cheap", "flagship", "flaky-with-fallback"} <= ids


def test_parameters_pass_through_unchanged(client: openai.OpenAI, sims: dict[str, str]) -> None:
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
    client.chat.completions.create(
        model="cheap", messages=MESSAGES, max_completion_tokens=9, temperature=0.3, top_p=0.9,
        stop=["\n\n"], seed=11, user="u-42", logprobs=True, top_logprobs=2, tools=tools,
        tool_choice="auto", response_format={"type": "text"}, extra_body={"top_k": 5},
    )
    seen = last_request(sims, "small")
    assert seen["model"] == "sim-small"
    for name, value in {
        "max_completion_tokens": 9, "temperature": 0.3, "top_p": 0.9, "stop": ["\n\n"], "seed": 11,
        "user": "u-42", "logprobs": True, "top_logprobs": 2, "tools": tools, "tool_choice": "auto",
        "response_format": {"type": "text"}, "top_k": 5,
    }.items():
        assert seen[name] == value, name


def test_logprobs_are_returned(client: openai.OpenAI) -> None:
    answer = client.chat.completions.create(model="cheap", messages=MESSAGES, max_tokens=4, logprobs=True, top_logprobs=3)
    content = answer.choices[0].logprobs.content
    assert len(content) == 4
    assert all(t.logprob <= 0 and len(t.top_logprobs) == 3 for t in content)


def test_forced_tool_call_comes_back(client: openai.OpenAI) -> None:
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
    answer = client.chat.completions.create(model="cheap", messages=MESSAGES, tools=tools, tool_choice="required")
    call = answer.choices[0].message.tool_calls[0]
    assert answer.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather" and '"city"' in call.function.arguments


def test_every_answer_carries_its_price_and_the_flagship_counterfactual(client: openai.OpenAI) -> None:
    cheap = client.chat.completions.with_raw_response.create(model="cheap", messages=MESSAGES, max_tokens=20)
    assert cheap.headers["x-tollgate-cost-source"] == "roofline"
    cost, flagship = float(cheap.headers["x-tollgate-cost-usd"]), float(cheap.headers["x-tollgate-flagship-cost-usd"])
    assert 0 < cost < flagship
    api = client.chat.completions.with_raw_response.create(model="api-priced", messages=MESSAGES, max_tokens=10)
    usage = api.parse().usage
    cached = usage.prompt_tokens_details.cached_tokens
    expected = ((usage.prompt_tokens - cached) * 1.0 + cached * 0.5 + usage.completion_tokens * 3.0) / 1e6
    assert api.headers["x-tollgate-cost-source"] == "api"
    assert float(api.headers["x-tollgate-cost-usd"]) == pytest.approx(expected, abs=1e-8)


SECRET = [{"role": "system", "content": "Internal memo. Project Nightjar: acquisition of Hollowbrook Robotics "
                                         "closes on March 3 at 41 dollars a share. Do not disclose. " * 3},
          {"role": "user", "content": "Summarise."}]
GUESS_WRONG = [{"role": "system", "content": "Internal memo. Project Kestrel: acquisition of Brightwater Dynamics "
                                             "closes on June 9 at 37 dollars a share. Do not disclose. " * 3},
               {"role": "user", "content": "Summarise."}]


def _cached_and_cost(gateway: str, key: str, messages: list) -> tuple[int, float]:
    client = openai.OpenAI(base_url=gateway + "/v1", api_key=key, max_retries=0)
    raw = client.chat.completions.with_raw_response.create(model="cheap", messages=messages, max_tokens=4,
                                                           extra_headers={"cache-control": "no-store"})
    return raw.parse().usage.prompt_tokens_details.cached_tokens, float(raw.headers["x-tollgate-cost-usd"])


def test_a_right_guess_of_another_tenants_prompt_looks_exactly_like_a_wrong_one(gateway: str) -> None:
    from tests.support.stack import admin, new_tenant_key

    victim, attacker, other = (new_tenant_key(gateway, name) for name in ("cache-victim", "cache-attacker", "cache-other"))
    for _ in range(2):
        _cached_and_cost(gateway, victim, SECRET)  # the victim's prompt is in the engine's prefix cache
    assert _cached_and_cost(gateway, victim, SECRET)[0] >= 64  # (its own repeats do hit it)
    right = _cached_and_cost(gateway, attacker, SECRET)
    wrong = _cached_and_cost(gateway, other, GUESS_WRONG)
    assert right[0] == wrong[0] == 0 and right[1] == pytest.approx(wrong[1], rel=0.02)
    with admin(gateway) as api:  # a tenant put in the victim's group shares its cache, knowingly
        assert api.patch("/admin/tenants/cache-victim", json={"prefix_cache_group": "cache-pair"}).status_code == 200
        assert api.patch("/admin/tenants/cache-attacker", json={"prefix_cache_group": "cache-pair"}).json()[
            "prefix_cache_group"] == "cache-pair"
    time.sleep(0.6)
    _cached_and_cost(gateway, victim, SECRET)
    assert _cached_and_cost(gateway, attacker, SECRET)[0] >= 64


def test_a_client_cannot_choose_the_engines_cache_salt(client: openai.OpenAI, sims: dict[str, str]) -> None:
    client.chat.completions.create(model="cheap", messages=MESSAGES, max_tokens=2, extra_body={"cache_salt": "victim"})
    sent = last_request(sims, "small")["cache_salt"]
    assert sent != "victim" and len(sent) == 32


def test_embeddings_are_forwarded_priced_recorded_and_limited(gateway: str) -> None:
    import math

    import httpx

    from tests.support.stack import admin, new_tenant_key

    key = new_tenant_key(gateway, "embedder")
    client = openai.OpenAI(base_url=gateway + "/v1", api_key=key, max_retries=0)
    raw = client.embeddings.with_raw_response.create(model="cheap", input=["the sea", "the sky"])  # the SDK asks for base64
    result = raw.parse()
    assert [d.index for d in result.data] == [0, 1] and result.model == "cheap"
    vectors = [d.embedding for d in result.data]
    assert all(len(v) == 384 and math.isclose(math.fsum(x * x for x in v), 1.0, rel_tol=1e-4) for v in vectors)
    assert vectors[0] != vectors[1] and result.usage.prompt_tokens > 0
    assert float(raw.headers["x-tollgate-cost-usd"]) > 0 and raw.headers["x-tollgate-cost-source"] == "roofline"
    again = client.embeddings.create(model="cheap", input=["the sea", "the sky"], encoding_format="float")
    assert [round(x, 5) for x in again.data[0].embedding] == [round(x, 5) for x in vectors[0]]  # deterministic
    with pytest.raises(openai.BadRequestError, match="not routed"):
        client.embeddings.create(model="auto", input="x")
    with pytest.raises(openai.BadRequestError):
        client.embeddings.create(model="cheap", input="")
    ledger = httpx.get(gateway + "/v1/ledger", headers={"authorization": f"Bearer {key}"}).json()["data"]
    embedded = [r for r in ledger if r["endpoint"] == "/embeddings" and r["status"] == 200]
    assert len(embedded) == 2 and all(r["completion_tokens"] == 0 and r["cost_usd"] > 0 for r in embedded)
    assert all(r["flagship_cost_usd"] == r["cost_usd"] for r in embedded)  # nothing routed, nothing saved
    with admin(gateway) as api:
        api.put("/admin/tenants/embedder/limits", json={"tenant": {"rpm": 1}})
    time.sleep(1.1)
    with pytest.raises(openai.RateLimitError):
        for _ in range(3):
            client.embeddings.create(model="cheap", input="limited", extra_headers={"cache-control": "no-cache"})
