"""Cache: the exact response cache on the request path (its rules are in ``cache/exact.py``).

Entries live in Redis under the tenant's hash tag with a TTL; a lookup is one GET on the request
path's pipelined connection, a store one SET made after the answer went out. A hit costs $0 and
is recorded with what the original call cost (its saving) and its flagship-only cost. Redis
errors make a lookup a miss and drop a store: the cache is an optimisation, never a dependency.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import orjson
from redis.exceptions import RedisError

from cache import exact

from .. import metrics
from ..config import ExactCacheConfig
from ..logs import Warnings
from ..protocol import EMBEDDINGS
from ..store.fast_redis import ScriptRunner

log = logging.getLogger("tollgate.cache")
throttled = Warnings(log)


@dataclass(frozen=True, slots=True)
class CacheRule:
    """Where this call's answer is (or goes) in the cache, and what the client allows."""

    key: str
    may_read: bool
    may_store: bool


@dataclass(frozen=True, slots=True)
class CachedAnswer:
    answer: dict[str, Any]
    cost_usd: float  # what the original call cost: this hit's saving
    flagship_cost_usd: float | None


class ResponseCache:
    def __init__(self, config: ExactCacheConfig, scripts: ScriptRunner) -> None:
        self.config = config
        self.scripts = scripts
        self._pending: set[asyncio.Task] = set()

    def rule(self, tenant: str, endpoint: str, route_kind: str, model: str, body: dict[str, Any],
             cache_control: str | None) -> CacheRule | None:
        """Whether this call may be read from and stored in the cache, and under which key."""
        # embeddings are deterministic whatever the body says: always cacheable
        if not exact.cacheable(body, self.config.deterministic_only and endpoint != EMBEDDINGS):
            return None
        may_read, may_store = exact.directives(cache_control)
        if not (may_read or may_store):
            return None
        # The route kind is part of the key: a cascade's answer may be the flagship's.
        return CacheRule(exact.cache_key(tenant, endpoint, f"{route_kind}:{model}", body), may_read, may_store)

    async def lookup(self, rule: CacheRule, tenant: str) -> CachedAnswer | None:
        if not rule.may_read:
            return None
        try:
            raw = await self.scripts.command("GET", rule.key)
        except (RedisError, OSError) as err:
            throttled.warn(f"cache lookups skipped: {type(err).__name__}")
            return None
        if raw is None:
            return None
        try:
            stored = orjson.loads(raw)
            cached = CachedAnswer(stored["answer"], float(stored.get("cost_usd") or 0.0), stored.get("flagship_cost_usd"))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return None
        metrics.CACHE_HITS.labels(tenant, "exact").inc()
        return cached

    def assembler(self, rule: CacheRule | None) -> exact.StreamAssembler | None:
        """Rebuilds a streamed answer so that a streamed miss can be stored too."""
        return exact.StreamAssembler() if rule is not None and rule.may_store else None

    def store_soon(self, rule: CacheRule, answer: dict[str, Any], cost_usd: float, flagship_cost_usd: float | None) -> None:
        if not rule.may_store:
            return
        payload = exact.entry(answer, cost_usd, flagship_cost_usd)
        if len(payload) > self.config.max_entry_bytes:
            return
        task = asyncio.get_running_loop().create_task(self._store(rule.key, payload))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _store(self, key: str, payload: bytes) -> None:
        try:
            await self.scripts.command("SET", key, payload, "EX", self.config.ttl_s)
        except (RedisError, OSError) as err:
            throttled.warn(f"cache stores dropped: {type(err).__name__}")
