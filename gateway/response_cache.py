"""The exact response cache on the request path (the rules are in ``cache/exact.py``).

Entries live in Redis under the tenant's hash tag with a TTL; a lookup is one GET on the request
path's pipelined connection, a store one SET made after the answer went out. A hit costs $0 and
is recorded with what the original call cost (its saving) and its flagship-only cost. Redis
errors make a lookup a miss and drop a store: the cache is an optimisation, never a dependency.
"""

from __future__ import annotations

import asyncio
import logging
from typing import AsyncIterator

import orjson
from redis.exceptions import RedisError
from starlette.responses import Response, StreamingResponse

from cache import exact

from . import metrics, sse
from .config import ExactCacheConfig
from .fast_redis import ScriptRunner
from .proxy import Call

log = logging.getLogger("tollgate.cache")


class ResponseCache:
    def __init__(self, config: ExactCacheConfig, scripts: ScriptRunner) -> None:
        self.config = config
        self.scripts = scripts
        self._pending: set[asyncio.Task] = set()

    def plan(self, call: Call, cache_control: str | None) -> None:
        """Decide whether this call may be read from and stored in the cache, and under which key."""
        if not exact.cacheable(call.body, self.config.deterministic_only) or call.route is None:
            return
        may_read, may_store = exact.directives(cache_control)
        if not (may_read or may_store):
            return
        # The route kind is part of the key: a cascade's answer may be the flagship's.
        call.cache_key = exact.cache_key(call.tenant, call.endpoint, f"{call.route_kind}:{call.route.model}", call.body)
        call.cache_read = may_read
        if may_store:
            call.on_answer = lambda answer: self.store_soon(call, answer)
            if call.stream:
                call.assembler = exact.StreamAssembler()

    async def lookup(self, call: Call) -> dict | None:
        if not call.cache_key or not call.cache_read:
            return None
        try:
            raw = await self.scripts.command("GET", call.cache_key)
        except (RedisError, OSError) as err:
            log.warning("cache lookup skipped: %s", type(err).__name__)
            return None
        if raw is None:
            return None
        try:
            stored = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return None
        call.cache_hit = True
        call.cache_saved_usd = float(stored.get("cost_usd") or 0.0)
        call.cache_flagship_usd = stored.get("flagship_cost_usd")
        call.answered = True
        metrics.CACHE_HITS.labels(call.tenant, "exact").inc()
        return stored

    def store_soon(self, call: Call, answer: dict) -> None:
        price = call.price
        if call.cache_key is None or price is None:
            return
        payload = exact.entry(answer, price.cost_usd, price.flagship_cost_usd)
        if len(payload) > self.config.max_entry_bytes:
            return
        task = asyncio.get_running_loop().create_task(self._store(call.cache_key, payload))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _store(self, key: str, payload: bytes) -> None:
        try:
            await self.scripts.command("SET", key, payload, "EX", self.config.ttl_s)
        except (RedisError, OSError) as err:
            log.warning("cache store dropped: %s", type(err).__name__)


def cached_response(call: Call, stored: dict, include_usage: bool) -> Response:
    """A hit, whole or replayed as a stream, labelled as free."""
    answer = exact.replayed(stored, call.request_id)
    if call.route is not None:
        answer["model"] = call.route.model
    headers = {"x-tollgate-cache": "hit", "x-tollgate-cost-usd": "0.00000000",
               "x-tollgate-model": answer["model"], "x-tollgate-backend": "cache"}
    if not call.stream:
        return Response(orjson.dumps(answer), media_type="application/json", headers=headers)

    async def events() -> AsyncIterator[bytes]:
        for chunk in exact.stream_chunks(answer, include_usage):
            yield sse.encode(orjson.dumps(chunk))
        yield sse.DONE_EVENT

    return StreamingResponse(events(), media_type="text/event-stream", headers={**headers, "cache-control": "no-cache"})
