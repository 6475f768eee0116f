"""Everything one gateway worker holds for its lifetime: its parts, built once from the settings,
and the pipeline that runs them. The HTTP routes reach the parts through ``app.state.gateway``."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from redis.asyncio import Redis

from .config import ENGINE_KINDS, Settings
from .pipeline import Pipeline
from .stages.accounting.metering import meter_forever
from .stages.accounting.service import Accounting
from .stages.auth import Authenticator
from .stages.cache import ResponseCache
from .stages.labels import LabelKeeper
from .stages.moderation import Moderation
from .stages.prefix import CacheSalts, PrefixRouter
from .stages.pricing import Pricing
from .stages.router import Router
from .store.fast_redis import ScriptRunner
from .store.redis import REDIS_TIMEOUT_S, redis_client
from .store.tenants import TenantStore
from .tracing import Tracing
from .upstream.forwarder import Forwarder
from .upstream.pool import UpstreamPool, poll_engines
from .upstream.transport import Transport


@dataclass
class GatewayState:
    settings: Settings
    redis: Redis
    store: TenantStore
    auth: Authenticator
    pool: UpstreamPool
    pricing: Pricing
    accounting: Accounting
    router: Router
    pipeline: Pipeline
    labels: LabelKeeper | None = None
    moderation: Moderation | None = None
    _tasks: list[asyncio.Task] = field(default_factory=list)

    @classmethod
    def build(cls, settings: Settings, transports: dict[str, Transport] | None = None) -> GatewayState:
        """``transports`` replace backends' network transports (tests use ``MockTransport``)."""
        if not settings.redis_url:
            raise ValueError("settings.redis_url is required (tollgate serve starts an embedded server)")
        if not settings.auth.key_hash_secret:
            raise ValueError("settings.auth.key_hash_secret is required")
        redis = redis_client(settings.redis_url)
        store = TenantStore(redis, settings.auth.key_hash_secret.encode())
        pool = UpstreamPool(settings, transports)
        pricing = Pricing(settings, pool.average_batch)
        scripts = ScriptRunner(redis, settings.redis_url, REDIS_TIMEOUT_S)
        accounting = Accounting(settings, redis, scripts, pricing)
        defaults = (accounting.default_tenant_limits, accounting.default_key_limits)
        auth = Authenticator(store, settings.auth.cache_ttl_s, settings.auth.admin_key, limit_defaults=defaults,
                             stale_on_error_s=settings.auth.stale_on_error_s)
        router = Router(pool, settings.router, redis)
        cascade = settings.router.cascade if settings.router else None
        labels = LabelKeeper(redis, cascade.max_labels) if cascade and cascade.keep_labels else None
        moderation = Moderation(settings.moderation) if settings.moderation.enabled else None
        cache = ResponseCache(settings.cache.exact, scripts) if settings.cache.exact.enabled else None
        prefix = PrefixRouter(settings.cache.prefix, scripts) if settings.cache.prefix.enabled else None
        salts = CacheSalts(settings.auth.key_hash_secret.encode()) if settings.cache.prefix.isolate_tenants else None
        tracing = Tracing(settings.tracing) if settings.tracing.enabled else None
        pipeline = Pipeline(auth=auth, router=router, forwarder=Forwarder(pool), pricing=pricing, accounting=accounting,
                            request_timeout_s=settings.server.request_timeout_s, moderation=moderation, prefix=prefix,
                            salts=salts, cache=cache, labels=labels, tracing=tracing)
        return cls(settings, redis, store, auth, pool, pricing, accounting, router, pipeline, labels, moderation)

    async def start(self) -> None:
        self.pool.start()
        loop = asyncio.get_running_loop()
        engines = [b for b in self.pool.backends.values() if b.config.kind in ENGINE_KINDS]
        if engines:
            self._tasks.append(loop.create_task(poll_engines(engines, self.settings.pricing.metrics_poll_s)))
        if any(self.pricing.usd_per_replica_hour(name) is not None for name in self.pool.backends):
            ledger = self.accounting.ledger
            self._tasks.append(loop.create_task(meter_forever(self.accounting.scripts, self.pool, self.pricing,
                                                              ledger.aggregate_ttl_s)))
        if self.settings.router is not None:
            self._tasks.append(loop.create_task(self.router.refresh_forever()))
        self._tasks.append(loop.create_task(self.accounting.ledger.replay_forever()))

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.accounting.ledger.drain()
        await self.accounting.scripts.close()
        await self.pool.close()
        if self.moderation is not None:
            await self.moderation.close()
        if self.pipeline.tracing is not None:
            await asyncio.to_thread(self.pipeline.tracing.close)  # sends the last batch
        await self.redis.aclose()
