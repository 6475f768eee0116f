"""Everything one gateway worker holds for its lifetime: settings, Redis, auth, upstream pools."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from redis.asyncio import Redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from .auth import Authenticator
from .billing import Billing
from .config import ENGINE_KINDS, Settings
from .engine_metrics import poll_engines
from .routing import Router
from .tenants import TenantStore
from .upstream import UpstreamPool

REDIS_TIMEOUT_S = 1.0


def redis_client(url: str) -> Redis:
    """A Redis client whose every call gives up after a bounded time instead of hanging."""
    return Redis.from_url(
        url,
        socket_timeout=REDIS_TIMEOUT_S,
        socket_connect_timeout=REDIS_TIMEOUT_S,
        retry=Retry(NoBackoff(), 1),
        health_check_interval=30,
    )


@dataclass
class GatewayState:
    settings: Settings
    redis: Redis
    store: TenantStore
    auth: Authenticator
    pool: UpstreamPool
    billing: Billing
    router: Router | None = None
    _tasks: list[asyncio.Task] = field(default_factory=list)

    @classmethod
    def build(cls, settings: Settings) -> GatewayState:
        if not settings.redis_url:
            raise ValueError("settings.redis_url is required (tollgate serve starts an embedded server)")
        if not settings.auth.key_hash_secret:
            raise ValueError("settings.auth.key_hash_secret is required")
        redis = redis_client(settings.redis_url)
        store = TenantStore(redis, settings.auth.key_hash_secret.encode())
        auth = Authenticator(store, settings.auth.cache_ttl_s, settings.auth.admin_key)
        router = Router(settings.router, redis) if settings.router else None
        return cls(settings, redis, store, auth, UpstreamPool(settings), Billing(settings), router)

    async def start(self) -> None:
        self.pool.start()
        engines = [b for b in self.pool.backends.values() if b.config.kind in ENGINE_KINDS]
        if engines:
            poller = poll_engines(engines, self.settings.pricing.metrics_poll_s)
            self._tasks.append(asyncio.get_running_loop().create_task(poller))
        if self.router is not None:
            self._tasks.append(asyncio.get_running_loop().create_task(self.router.refresh_forever()))

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.pool.close()
        await self.redis.aclose()
