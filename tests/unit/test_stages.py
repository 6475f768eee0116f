"""Stages as functions of values: moderation, pricing, the cache's rule, and the ledger record."""

from __future__ import annotations

import asyncio

import pytest

from gateway.call import Arrival, Outcome, refusal_record
from gateway.stages.cache import ResponseCache
from gateway.stages.moderation import Blocked, Moderation
from gateway.stages.pricing import Pricing
from gateway.upstream.forwarder import Served
from gateway.upstream.pool import Replica
from tests.support.fakes import settings

USAGE = {"prompt_tokens": 1000, "completion_tokens": 200}


def test_screening_redacts_and_a_block_carries_what_it_found() -> None:
    moderation = Moderation(settings(moderation={"input": {"pii": "block"}}).moderation)
    screening = asyncio.run(moderation.screen({"messages": [{"role": "user", "content": "key AKIAIOSFODNN7EXAMPLE"}]},
                                              None, "t"))
    assert screening.body["messages"][0]["content"] == "key [AWS_KEY]" and screening.verdict.action == "redact"
    assert not screening.checks_answer and not screening.watches_stream
    with pytest.raises(Blocked) as caught:
        asyncio.run(moderation.screen({"prompt": "bob@example.com"}, None, "t"))
    assert caught.value.verdict.categories == {"pii": "block"} and caught.value.status == 400


def test_a_tenants_overrides_turn_the_answer_checks_on() -> None:
    moderation = Moderation(settings().moderation)
    screening = asyncio.run(moderation.screen({"prompt": "hi"}, '{"output": {"pii": "redact"}}', "t"))
    assert screening.checks_answer and screening.watches_stream
    answer, verdict = asyncio.run(moderation.check_answer(
        {"choices": [{"message": {"content": "call 555-0100 or bob@example.com"}}]}, screening, "t"))
    assert "[EMAIL]" in answer["choices"][0]["message"]["content"] and verdict.categories["pii"] == "redact"


def _served(backend: str, model: str, upstream: str, usage: dict) -> Served:
    return Served(model, backend, upstream, Replica("http://x/v1"), usage)


def test_an_escalated_call_pays_for_both_and_compares_the_answer_with_the_flagship() -> None:
    pricing = Pricing(settings())
    cheap = _served("small", "cheap", "m-small", USAGE)
    flagship = _served("large", "flagship", "m-large", USAGE)
    alone = pricing.price_calls([cheap])
    both = pricing.price_calls([cheap, flagship])
    top = pricing.price_calls([flagship])
    assert both.cost_usd == pytest.approx(alone.cost_usd + top.cost_usd)
    assert both.flagship_cost_usd == pytest.approx(top.cost_usd) == pytest.approx(alone.flagship_cost_usd)
    assert pricing.price_calls([]).cost_usd == 0.0


def test_an_api_call_is_priced_from_its_table_and_an_unknown_one_is_unpriced() -> None:
    pricing = Pricing(settings())
    api = pricing.price_calls([_served("api", "mini", "mini", USAGE)])
    assert api.cost_usd == pytest.approx((1000 * 1.0 + 200 * 2.0) / 1e6) and api.source == "api"
    assert pricing.price_calls([_served("api", "x", "other", USAGE)]).source == "unpriced"


def test_the_cache_rule_is_for_deterministic_requests_and_honours_cache_control() -> None:
    cache = ResponseCache(settings().cache.exact, scripts=None)  # type: ignore[arg-type]
    body = {"messages": [{"role": "user", "content": "hi"}], "temperature": 0}
    rule = cache.rule("t", "/chat/completions", "direct", "cheap", body, None)
    assert rule is not None and rule.may_read and rule.may_store and rule.key.startswith("tg:cache:{t:t}:")
    assert cache.rule("t", "/chat/completions", "direct", "cheap", {**body, "temperature": 1}, None) is None
    assert cache.rule("t", "/chat/completions", "direct", "cheap", body, "no-store") is None
    no_cache = cache.rule("t", "/chat/completions", "direct", "cheap", body, "no-cache")
    assert no_cache is not None and not no_cache.may_read and no_cache.may_store
    other = cache.rule("u", "/chat/completions", "direct", "cheap", body, None)
    assert other is not None and other.key != rule.key  # tenants never share entries
    assert cache.rule("t", "/chat/completions", "cascade", "cheap", body, None).key != rule.key  # type: ignore[union-attr]


def test_a_refusal_is_recorded_with_the_model_the_body_named() -> None:
    arrival = Arrival("r", "t", "k", "/chat/completions", 0.0, 1.0, 10.0)
    record = refusal_record(arrival, Outcome(400, "invalid_value"), 0.5, {"model": "gpt-x" * 100}, None, None, None)
    assert record.requested_model == ("gpt-x" * 100)[:200] and record.status == 400 and record.model == ""
    assert record.latency_ms == 500.0 and record.route == "direct"
    junk = refusal_record(arrival, Outcome(400, "invalid_json"), 0.5, {"model": 7}, None, None, None)
    assert junk.requested_model == ""


class _Store:
    """A tenant store in memory, with a switch to fail as an unreachable Redis would."""

    def __init__(self) -> None:
        from gateway.store.keys import hash_key, new_key

        self.server_secret = b"secret"
        self.key = new_key()
        self.record = {"id": self.key.key_id, "tenant": "acme", "name": "k", "role": "tenant",
                       "hash": hash_key(self.server_secret, self.key.full), "created": "0", "revoked": "0"}
        self.tenant = {"id": "acme", "disabled": "0", "limit:tenant:rpm": "10", "prefix_cache_group": "team"}
        self.down = False
        self.reads = 0

    async def get_key(self, key_id: str):  # type: ignore[no-untyped-def]
        from redis.exceptions import ConnectionError as RedisConnectionError

        from gateway.store.tenants import key_record_from_hash

        self.reads += 1
        if self.down:
            raise RedisConnectionError("down")
        return key_record_from_hash(self.record if key_id == self.record["id"] else {})

    async def tenant_fields(self, tenant: str) -> dict[str, str]:
        return dict(self.tenant)


def test_authentication_caches_by_hash_refuses_revoked_keys_and_rides_out_a_redis_blip() -> None:
    from gateway.errors import APIError
    from gateway.stages.auth import Authenticator

    store = _Store()
    auth = Authenticator(store, cache_ttl_s=60, static_admin_key=None, stale_on_error_s=300)  # type: ignore[arg-type]
    bearer = f"Bearer {store.key.full}"
    caller = asyncio.run(auth.authenticate(bearer))
    assert (caller.tenant, caller.limits.tenant.rpm, caller.cache_group) == ("acme", 10, "team")
    asyncio.run(auth.authenticate(bearer))
    assert store.reads == 1  # the second call came from the cache
    for bad in (None, "Bearer nonsense", f"Bearer {store.key.full[:-2]}xx"):
        with pytest.raises(APIError) as refused:
            asyncio.run(auth.authenticate(bad))
        assert refused.value.status == 401
    auth = Authenticator(store, cache_ttl_s=0, static_admin_key=None, stale_on_error_s=300)  # type: ignore[arg-type]
    asyncio.run(auth.authenticate(bearer))
    store.down = True
    assert asyncio.run(auth.authenticate(bearer)).tenant == "acme"  # verified lately: keeps working
    store.down = False
    store.record["revoked"] = "1"
    with pytest.raises(APIError):
        asyncio.run(auth.authenticate(bearer))


def test_a_cascade_label_is_the_prompt_whether_the_flagship_was_needed_and_why() -> None:
    from gateway.stages.labels import label_of

    label = label_of({"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"}]},
                     "acme", confidence=0.31, reason="low_confidence")
    assert label is not None and label["prompt"] == "Be brief.\n2+2?" and (label["weak"], label["strong"]) == (0.0, 1.0)
    assert (label["escalated"], label["reason"], label["confidence"]) == (True, "low_confidence", 0.31)
    kept = label_of({"prompt": "Hi"}, "acme", confidence=0.9, reason=None)
    assert kept is not None and (kept["weak"], kept["escalated"], kept["reason"]) == (1.0, False, None)
    assert label_of({"input": "no prompt"}, "acme", None, None) is None
