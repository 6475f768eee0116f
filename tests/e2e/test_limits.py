"""Rate limits and budgets through the gateway, with the official client and OpenAI's headers."""

from __future__ import annotations

import time

import httpx
import openai
import pytest

from tests.support.stack import admin, gateway_metrics, new_tenant_key

AUTH_CACHE_S = 0.6  # limits travel with the key lookup, cached for half a second


def _client(gateway: str, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway + "/v1", api_key=key, max_retries=0, timeout=30)


def _set_limits(gateway: str, tenant_id: str, **scopes: dict) -> None:
    with admin(gateway) as api:
        response = api.put(f"/admin/tenants/{tenant_id}/limits", json=scopes)
        assert response.status_code == 200, response.text
    time.sleep(AUTH_CACHE_S)


def _wait_for_fresh_minute(margin_s: float = 10) -> None:
    """Start a minute-window test early in a minute, so that it cannot straddle two windows."""
    if time.time() % 60 > 60 - margin_s:
        time.sleep(60 - time.time() % 60 + 0.1)


def test_requests_per_minute_is_exact_and_the_rejection_says_why(gateway: str) -> None:
    key = new_tenant_key(gateway, "rpm-tenant")
    _set_limits(gateway, "rpm-tenant", tenant={"rpm": 3})
    _wait_for_fresh_minute()
    client = _client(gateway, key)
    for remaining in (2, 1, 0):
        raw = client.chat.completions.with_raw_response.create(model="cheap", messages=[{"role": "user", "content": "hi"}], max_tokens=2)
        assert raw.headers["x-ratelimit-limit-requests"] == "3"
        assert raw.headers["x-ratelimit-remaining-requests"] == str(remaining)
        assert raw.headers["x-ratelimit-reset-requests"].endswith("s")
    with pytest.raises(openai.RateLimitError) as rejected:
        client.chat.completions.create(model="cheap", messages=[{"role": "user", "content": "hi"}], max_tokens=2)
    error = rejected.value
    assert error.code == "rate_limit_exceeded" and error.body["type"] == "requests"
    assert 1 <= int(error.response.headers["retry-after"]) <= 60
    assert error.response.headers["x-ratelimit-remaining-requests"] == "0"
    metrics = gateway_metrics(gateway)
    assert 'tollgate_limit_rejections_total{limit="rpm",tenant="rpm-tenant"} 1.0' in metrics


def test_tokens_per_minute_reserve_the_output_budget_and_reconcile_to_real_usage(gateway: str) -> None:
    key = new_tenant_key(gateway, "tpm-tenant")
    _set_limits(gateway, "tpm-tenant", key={"tpm": 400})
    _wait_for_fresh_minute()
    client = _client(gateway, key)
    raw = client.chat.completions.with_raw_response.create(
        model="cheap", messages=[{"role": "user", "content": "hello"}], max_tokens=200)
    reserved_left = int(raw.headers["x-ratelimit-remaining-tokens"])
    usage = raw.parse().usage
    assert reserved_left <= 400 - 200  # the whole output budget was held at admission
    second = client.chat.completions.with_raw_response.create(
        model="cheap", messages=[{"role": "user", "content": "hello"}], max_tokens=5)
    # After reconciliation only the first call's real tokens count, not its 200-token budget.
    assert int(second.headers["x-ratelimit-remaining-tokens"]) >= 400 - usage.total_tokens - 30
    with pytest.raises(openai.RateLimitError) as too_large:
        client.chat.completions.create(model="cheap", messages=[{"role": "user", "content": "hi"}], max_tokens=1000)
    assert "Request too large" in too_large.value.message and too_large.value.body["type"] == "tokens"


def test_a_daily_budget_rejects_with_insufficient_quota(gateway: str) -> None:
    key = new_tenant_key(gateway, "budget-tenant")
    _set_limits(gateway, "budget-tenant", tenant={"daily_usd": 0.00001})
    client = _client(gateway, key)
    with pytest.raises(openai.RateLimitError) as rejected:  # flagship's 4096-token worst case exceeds it
        client.chat.completions.create(model="flagship", messages=[{"role": "user", "content": "hi"}])
    assert rejected.value.code == "insufficient_quota"
    assert int(rejected.value.response.headers["retry-after"]) <= 86_400
    client.chat.completions.create(model="cheap", messages=[{"role": "user", "content": "hi"}], max_tokens=1)


def test_per_key_limits_and_the_admin_api(gateway: str) -> None:
    key = new_tenant_key(gateway, "key-limits")
    key_id = key.split(".")[0].removeprefix("sk-tg-")
    with admin(gateway) as api:
        set_key = api.put(f"/admin/keys/{key_id}/limits", json={"rpm": 1})
        assert set_key.status_code == 200 and set_key.json()["effective"]["rpm"] == 1
        assert api.put("/admin/keys/nope/limits", json={"rpm": 1}).status_code == 404
        assert api.put("/admin/tenants/key-limits/limits", json={"tenant": {"rpm": -5}}).status_code == 400
        shown = api.get("/admin/tenants/key-limits/limits").json()
        assert shown["effective"]["tenant"]["rpm"] is None
    time.sleep(AUTH_CACHE_S)
    _wait_for_fresh_minute()
    client = _client(gateway, key)
    client.completions.create(model="cheap", prompt="one", max_tokens=1)
    with pytest.raises(openai.RateLimitError):
        client.completions.create(model="cheap", prompt="two", max_tokens=1)
    with admin(gateway) as api:
        api.put(f"/admin/keys/{key_id}/limits", json={"rpm": None})
    time.sleep(AUTH_CACHE_S)
    client.completions.create(model="cheap", prompt="three", max_tokens=1)


def test_tenant_keys_cannot_change_limits(gateway: str) -> None:
    key = new_tenant_key(gateway, "no-admin")
    response = httpx.put(gateway + "/admin/tenants/no-admin/limits", json={"tenant": {"rpm": 1000}},
                         headers={"authorization": f"Bearer {key}"})
    assert response.status_code == 403


def test_limits_are_exact_across_gateway_processes_and_workers(gateway: str, sims: dict[str, str], valkey: str,
                                                               tmp_path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from tests.support.processes import start_gateway, stop
    from tests.support.stack import ADMIN_KEY, gateway_config

    config = tmp_path / "tollgate.yaml"
    config.write_text(gateway_config(sims, valkey))
    second, second_base = start_gateway(config, {"TEST_ADMIN_KEY": ADMIN_KEY}, tmp_path, "--workers", "2")
    try:
        key = new_tenant_key(gateway, "replicas")
        _set_limits(gateway, "replicas", tenant={"rpm": 17})
        _wait_for_fresh_minute(margin_s=20)

        def one(index: int) -> int:
            base = (gateway, second_base)[index % 2]
            body = {"model": "cheap", "messages": [{"role": "user", "content": f"n{index}"}], "max_tokens": 1}
            return httpx.post(base + "/v1/chat/completions", json=body, timeout=30,
                              headers={"authorization": f"Bearer {key}"}).status_code

        with ThreadPoolExecutor(16) as pool:
            statuses = list(pool.map(one, range(60)))
    finally:
        stop(second)
    assert statuses.count(200) == 17 and statuses.count(429) == 43


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory: pytest.TempPathFactory, sims: dict[str, str], valkey: str):  # type: ignore[no-untyped-def]
    """A second gateway process, with two workers, on the same Valkey: bursts are spread over both."""
    from tests.support.processes import start_gateway, stop
    from tests.support.stack import ADMIN_KEY, gateway_config

    workdir = tmp_path_factory.mktemp("two-workers")
    config = workdir / "tollgate.yaml"
    config.write_text(gateway_config(sims, valkey))
    process, base = start_gateway(config, {"TEST_ADMIN_KEY": ADMIN_KEY}, workdir, "--workers", "2")
    yield base
    stop(process)


def _burst(gateways: tuple[str, ...], key: str, bodies: list[dict], endpoint: str = "/v1/chat/completions") -> list[httpx.Response]:
    from concurrent.futures import ThreadPoolExecutor

    def one(index: int) -> httpx.Response:
        return httpx.post(gateways[index % len(gateways)] + endpoint, json=bodies[index], timeout=30,
                          headers={"authorization": f"Bearer {key}"})

    with ThreadPoolExecutor(len(bodies)) as pool:
        return list(pool.map(one, range(len(bodies))))


def _spent(gateway: str, key: str) -> tuple[float, int]:
    time.sleep(0.3)
    records = httpx.get(gateway + "/v1/ledger", params={"limit": 1000}, headers={"authorization": f"Bearer {key}"}).json()["data"]
    return sum(r["cost_usd"] for r in records), sum(r["prompt_tokens"] + r["completion_tokens"] for r in records)


def test_a_budget_holds_against_n_answers_at_once(gateway: str, two_workers: str) -> None:
    """At $0.001 a token, ten concurrent calls asking for n=100 answers of 10 tokens each."""
    key = new_tenant_key(gateway, "budget-n")
    _set_limits(gateway, "budget-n", tenant={"daily_usd": 0.10})
    message = [{"role": "user", "content": "hi"}]
    too_large = _burst((gateway, two_workers), key, [{"model": "pricey", "messages": message, "n": 100, "max_tokens": 10}] * 10)
    assert {r.status_code for r in too_large} == {429}
    error = too_large[0].json()["error"]
    assert error["code"] == "insufficient_quota" and "$0.10" in error["message"] and "Request too large" in error["message"]
    fitting = _burst((gateway, two_workers), key, [{"model": "pricey", "messages": message, "n": 3, "max_tokens": 10}] * 10)
    assert 200 in {r.status_code for r in fitting} and 429 in {r.status_code for r in fitting}
    assert len(fitting[[r.status_code for r in fitting].index(200)].json()["choices"]) == 3
    spent, _ = _spent(gateway, key)
    assert 0 < spent <= 0.10  # never overshot, however many ran at once


def test_a_token_limit_holds_against_n_tools_and_batches(gateway: str, two_workers: str) -> None:
    key = new_tenant_key(gateway, "tpm-shapes")
    _set_limits(gateway, "tpm-shapes", tenant={"tpm": 2000})
    _wait_for_fresh_minute(margin_s=20)
    message = [{"role": "user", "content": "hi"}]
    many = _burst((gateway, two_workers), key, [{"model": "cheap", "messages": message, "n": 128, "max_tokens": 50}] * 4)
    assert {r.status_code for r in many} == {429} and "Request too large" in many[0].json()["error"]["message"]
    tools = [{"type": "function", "function": {"name": f"tool_{i}", "description": "lookup " * 60,
                                               "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}}
             for i in range(40)]
    schema = _burst((gateway, two_workers), key, [{"model": "cheap", "messages": message, "tools": tools, "max_tokens": 5}])
    assert schema[0].status_code == 429 and "Request too large" in schema[0].json()["error"]["message"]
    batch = _burst((gateway, two_workers), key, [{"model": "cheap", "prompt": ["a", "b", "c", "d"], "n": 2, "max_tokens": 60}] * 6,
                   "/v1/completions")
    statuses = [r.status_code for r in batch]
    assert 200 in statuses and 429 in statuses
    assert len(batch[statuses.index(200)].json()["choices"]) == 8
    fits = _burst((gateway, two_workers), key, [{"model": "cheap", "messages": message, "n": 4, "max_tokens": 40}] * 8)
    assert 200 in {r.status_code for r in fits}
    _, used = _spent(gateway, key)
    assert used <= 2000  # the minute's tokens, never overshot


def test_a_limited_caller_without_max_tokens_gets_the_reserved_cap_upstream(gateway: str, sims: dict[str, str]) -> None:
    from tests.support.stack import last_request

    key = new_tenant_key(gateway, "cap-tenant")
    _set_limits(gateway, "cap-tenant", tenant={"tpm": 1_000_000})
    _client(gateway, key).chat.completions.create(model="cheap", messages=[{"role": "user", "content": "hi"}])
    assert last_request(sims, "small")["max_tokens"] == 4096  # limits.default_output_tokens: what was reserved
