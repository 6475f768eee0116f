"""Everything one gateway worker holds for its lifetime: settings, Redis, auth, upstream pools."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import RedisCluster
from redis.backoff import NoBackoff
from redis.retry import Retry

from .accounting.service import Accounting
from .auth import Authenticator
from .billing import Billing
from .config import ENGINE_KINDS, Settings
from .engine_metrics import poll_engines
from .fast_redis import ScriptRunner
from .labels import LabelKeeper
from .moderation import GatewayModeration
from .prefix_routing import PrefixRouter
from .response_cache import ResponseCache
from .routing import Router
from .tenants import TenantStore
from .upstream import UpstreamPool

REDIS_TIMEOUT_S = 1.0


REDIS_MAX_CONNECTIONS = 64


CLUSTER_SCHEME = "redis+cluster://"


def redis_client(url: str) -> Redis:
    """A Redis client whose every call gives up after a bounded time instead of hanging.

    The pool blocks (up to the same timeout) when all its connections are busy, instead of
    failing at once as redis-py's default pool does past 100 concurrent calls: under a burst,
    requests queue for a connection for a few milliseconds rather than erroring.
    ``redis+cluster://host:port`` connects to a Redis/Valkey Cluster through any of its nodes.
    """
    if url.startswith(CLUSTER_SCHEME):
        return RedisCluster.from_url(  # type: ignore[return-value]
            "redis://" + url[len(CLUSTER_SCHEME):],
            socket_timeout=REDIS_TIMEOUT_S,
            socket_connect_timeout=REDIS_TIMEOUT_S,
            max_connections=REDIS_MAX_CONNECTIONS,
            cluster_error_retry_attempts=2,
        )
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=REDIS_MAX_CONNECTIONS,
        timeout=REDIS_TIMEOUT_S,
        socket_timeout=REDIS_TIMEOUT_S,
        socket_connect_timeout=REDIS_TIMEOUT_S,
        retry=Retry(NoBackoff(), 1),
        health_check_interval=30,
    )
    return Redis.from_pool(pool)  # owns the pool: aclose() closes its connections


@dataclass
class GatewayState:
    settings: Settings
    redis: Redis
    store: TenantStore
    auth: Authenticator
    pool: UpstreamPool
    billing: Billing
    accounting: Accounting
    router: Router | None = None
    labels: LabelKeeper | None = None
    moderation: GatewayModeration | None = None
    response_cache: ResponseCache | None = None
    prefix_router: PrefixRouter | None = None
    _tasks: list[asyncio.Task] = field(default_factory=list)

    @classmethod
    def build(cls, settings: Settings) -> GatewayState:
        if not settings.redis_url:
            raise ValueError("settings.redis_url is required (tollgate serve starts an embedded server)")
        if not settings.auth.key_hash_secret:
            raise ValueError("settings.auth.key_hash_secret is required")
        redis = redis_client(settings.redis_url)
        store = TenantStore(redis, settings.auth.key_hash_secret.encode())
        billing = Billing(settings)
        scripts = ScriptRunner(redis, settings.redis_url, REDIS_TIMEOUT_S)
        accounting = Accounting(settings, redis, scripts, billing)
        defaults = (accounting.default_tenant_limits, accounting.default_key_limits)
        auth = Authenticator(store, settings.auth.cache_ttl_s, settings.auth.admin_key, limit_defaults=defaults,
                             stale_on_error_s=settings.auth.stale_on_error_s)
        router = Router(settings.router, redis) if settings.router else None
        cascade = settings.router.cascade if settings.router else None
        labels = LabelKeeper(redis, cascade.max_labels) if cascade and cascade.keep_labels else None
        moderation = GatewayModeration(settings.moderation) if settings.moderation.enabled else None
        response_cache = ResponseCache(settings.cache.exact, scripts) if settings.cache.exact.enabled else None
        prefix_router = PrefixRouter(settings.cache.prefix, scripts) if settings.cache.prefix.enabled else None
        return cls(settings, redis, store, auth, UpstreamPool(settings), billing, accounting, router, labels, moderation,
                   response_cache, prefix_router)

    async def start(self) -> None:
        self.pool.start()
        engines = [b for b in self.pool.backends.values() if b.config.kind in ENGINE_KINDS]
        if engines:
            poller = poll_engines(engines, self.settings.pricing.metrics_poll_s)
            self._tasks.append(asyncio.get_running_loop().create_task(poller))
        if self.router is not None:
            self._tasks.append(asyncio.get_running_loop().create_task(self.router.refresh_forever()))
        self._tasks.append(asyncio.get_running_loop().create_task(self.accounting.ledger.replay_forever()))

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.accounting.ledger.drain()
        await self.accounting.scripts.close()
        await self.pool.close()
        if self.moderation is not None:
            await self.moderation.close()
        await self.redis.aclose()
