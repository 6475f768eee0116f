"""The stages that keep state in Redis, against a real Valkey: the response cache and the prefix index."""

from __future__ import annotations

import asyncio

from gateway.stages.cache import ResponseCache
from gateway.stages.prefix import PrefixRouter
from gateway.store.fast_redis import ScriptRunner
from gateway.store.redis import redis_client
from gateway.upstream.pool import UpstreamPool
from tests.support.fakes import settings

BODY = {"messages": [{"role": "system", "content": "You are a careful assistant. " * 30},
                     {"role": "user", "content": "hi"}], "temperature": 0}


def _scripts(valkey: str) -> ScriptRunner:
    return ScriptRunner(redis_client(valkey), valkey, 1.0)


def test_a_stored_answer_is_found_again_with_its_cost(valkey: str) -> None:
    async def run() -> None:
        scripts = _scripts(valkey)
        cache = ResponseCache(settings().cache.exact, scripts)
        rule = cache.rule("cache-tenant", "/chat/completions", "direct", "cheap", BODY, None)
        assert rule is not None and await cache.lookup(rule, "cache-tenant") is None
        cache.store_soon(rule, {"choices": [{"message": {"content": "hello"}}]}, 0.0012, 0.01)
        await asyncio.sleep(0.1)
        hit = await cache.lookup(rule, "cache-tenant")
        assert hit is not None and hit.cost_usd == 0.0012 and hit.flagship_cost_usd == 0.01
        no_read = cache.rule("cache-tenant", "/chat/completions", "direct", "cheap", BODY, "no-cache")
        assert no_read is not None and await cache.lookup(no_read, "cache-tenant") is None
        await scripts.close()

    asyncio.run(run())


def test_a_prompt_returns_to_the_replica_that_holds_its_prefix(valkey: str) -> None:
    config = settings(backends=[{"name": "pair", "kind": "vllm", "urls": ["http://a/v1", "http://b/v1"]}],
                      models=[{"name": "pair", "targets": [{"backend": "pair"}]}])
    pool = UpstreamPool(config)
    route = pool.resolve("pair")

    async def run() -> None:
        scripts = _scripts(valkey)
        first = await PrefixRouter(config.cache.prefix, scripts).choose(BODY, route)
        assert first is not None and first.expected_cached_tokens == 0
        await asyncio.sleep(0.1)  # the claim reaches Redis
        again = await PrefixRouter(config.cache.prefix, scripts).choose(BODY, route)  # another worker
        assert again is not None and again.replica is first.replica and again.expected_cached_tokens >= 16 * 10
        await scripts.close()

    asyncio.run(run())
