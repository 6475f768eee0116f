"""Everything one gateway worker holds for its lifetime: settings, Redis, auth, upstream pools."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from .auth import Authenticator
from .config import Settings
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

    @classmethod
    def build(cls, settings: Settings) -> GatewayState:
        if not settings.redis_url:
            raise ValueError("settings.redis_url is required (tollgate serve starts an embedded server)")
        if not settings.auth.key_hash_secret:
            raise ValueError("settings.auth.key_hash_secret is required")
        redis = redis_client(settings.redis_url)
        store = TenantStore(redis, settings.auth.key_hash_secret.encode())
        auth = Authenticator(store, settings.auth.cache_ttl_s, settings.auth.admin_key)
        return cls(settings, redis, store, auth, UpstreamPool(settings))

    async def start(self) -> None:
        self.pool.start()

    async def close(self) -> None:
        await self.pool.close()
        await self.redis.aclose()
