"""The exact response cache: deterministic requests only, per tenant, replayed whole or as a stream."""

from __future__ import annotations

import json
import time

import httpx
import openai
import pytest
import redis as sync_redis

from tests.support.stack import new_tenant_key


def _post(gateway: str, key: str, body: dict, **headers: str) -> httpx.Response:
    return httpx.post(gateway + "/v1/chat/completions", json=body, timeout=30,
                      headers={"authorization": f"Bearer {key}", **headers})


def _body(text: str, **extra) -> dict:
    return {"model": "cheap", "messages": [{"role": "user", "content": text}], "temperature": 0, "max_tokens": 12, **extra}


def test_a_repeated_deterministic_request_is_answered_free_from_the_cache(gateway: str) -> None:
    key = new_tenant_key(gateway, "cache-a")
    first = _post(gateway, key, _body("cache me please"))
    second = _post(gateway, key, _body("cache me please"))
    assert first.headers["x-tollgate-cache"] == "miss" and second.headers["x-tollgate-cache"] == "hit"
    assert second.json()["choices"] == first.json()["choices"] and second.json()["id"] != first.json()["id"]
    assert float(second.headers["x-tollgate-cost-usd"]) == 0.0 and float(first.headers["x-tollgate-cost-usd"]) > 0
    time.sleep(0.2)
    records = httpx.get(gateway + "/v1/ledger", headers={"authorization": f"Bearer {key}"}).json()["data"]
    hit = records[-1]
    assert hit["cache"] == "exact" and hit["cost_usd"] == 0 and hit["models"] == []
    assert hit["cache_saved_usd"] == pytest.approx(records[0]["cost_usd"])
    totals = httpx.get(gateway + "/v1/reports/costs", headers={"authorization": f"Bearer {key}"}).json()["totals"]
    assert totals["cache_hits"] == 1 and totals["cache_savings_usd"] == pytest.approx(records[0]["cost_usd"], abs=1e-9)


def test_only_deterministic_requests_are_cached_and_key_order_does_not_matter(gateway: str) -> None:
    key = new_tenant_key(gateway, "cache-b")
    assert "x-tollgate-cache" not in _post(gateway, key, {"model": "cheap", "messages": [{"role": "user", "content": "x"}]}).headers
    seeded = {"model": "cheap", "seed": 3, "messages": [{"role": "user", "content": "seeded"}]}
    _post(gateway, key, seeded)
    reordered = json.loads(json.dumps({"messages": seeded["messages"], "seed": 3, "model": "cheap"}))
    assert _post(gateway, key, reordered).headers["x-tollgate-cache"] == "hit"
    assert _post(gateway, key, {**seeded, "seed": 4}).headers["x-tollgate-cache"] == "miss"


def test_one_tenant_never_gets_another_tenants_answer(gateway: str) -> None:
    first, second = new_tenant_key(gateway, "cache-c1"), new_tenant_key(gateway, "cache-c2")
    _post(gateway, first, _body("shared question"))
    assert _post(gateway, first, _body("shared question")).headers["x-tollgate-cache"] == "hit"
    assert _post(gateway, second, _body("shared question")).headers["x-tollgate-cache"] == "miss"


def test_cache_control_no_cache_and_no_store(gateway: str, valkey: str) -> None:
    key = new_tenant_key(gateway, "cache-d")
    _post(gateway, key, _body("not stored"), **{"cache-control": "no-store"})
    assert _post(gateway, key, _body("not stored")).headers["x-tollgate-cache"] == "miss"
    assert _post(gateway, key, _body("not stored"), **{"cache-control": "no-cache"}).headers["x-tollgate-cache"] == "miss"
    assert _post(gateway, key, _body("not stored")).headers["x-tollgate-cache"] == "hit"
    store = sync_redis.Redis.from_url(valkey)
    keys = list(store.scan_iter("tg:cache:{t:cache-d}:*"))
    assert keys and all(0 < store.ttl(k) <= 3600 for k in keys)


def test_hits_replay_as_streams_and_streamed_misses_are_stored(gateway: str) -> None:
    key = new_tenant_key(gateway, "cache-e")
    client = openai.OpenAI(base_url=gateway + "/v1", api_key=key, max_retries=0)
    whole = client.chat.completions.create(**_body("stream me back"))
    chunks = list(client.chat.completions.create(**_body("stream me back"), stream=True, stream_options={"include_usage": True}))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == whole.choices[0].message.content
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
    streamed_first = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(
        **_body("streamed first"), stream=True) if c.choices)
    time.sleep(0.2)
    raw = client.chat.completions.with_raw_response.create(**_body("streamed first"))
    assert raw.headers["x-tollgate-cache"] == "hit" and raw.parse().choices[0].message.content == streamed_first
