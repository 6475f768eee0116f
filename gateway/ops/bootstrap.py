"""First start: the key-hashing secret, an admin key, and (the demo stack) a first tenant key.

Keys are printed once, on the run that creates them, and only their hashes are stored. The
hashing secret is created in ``<data_dir>/key_hash_secret`` (mode 600) unless the config or
``TOLLGATE_KEY_SECRET`` provides one; every replica of a deployment must share it.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from redis.exceptions import RedisError

from ..config import Settings
from ..store.redis import redis_client
from ..store.tenants import TenantStore
from .embedded import secret_file

log = logging.getLogger("tollgate.bootstrap")

DEFAULT_TENANT = "default"


def ensure_key_secret(settings: Settings) -> None:
    if not settings.auth.key_hash_secret:
        settings.auth.key_hash_secret = secret_file(Path(settings.data_dir) / "key_hash_secret")


async def _first_keys(settings: Settings, demo: bool) -> list[tuple[str, str]]:
    redis = redis_client(settings.redis_url or "")
    store = TenantStore(redis, (settings.auth.key_hash_secret or "").encode())
    created: list[tuple[str, str]] = []
    try:
        if not settings.auth.admin_key and not await store.has_admin_key():
            plain, _ = await store.create_key(None, name="bootstrap admin", role="admin")
            created.append(("admin key", plain))
        if demo and not await store.list_tenants():
            await store.create_tenant(DEFAULT_TENANT, "Default tenant")
            plain, _ = await store.create_key(DEFAULT_TENANT, name="bootstrap")
            created.append((f"tenant key ({DEFAULT_TENANT})", plain))
    finally:
        await redis.aclose()
    return created


def bootstrap(settings: Settings, demo: bool) -> list[tuple[str, str]]:
    """Create what a first run needs; returns (label, plain key) pairs to show once: an admin key
    unless one is configured, and (the demo stack only) a first tenant with a key.

    A Redis that is down at start does not stop the gateway: it starts, reports not-ready on
    /readyz, answers 503 where it needs Redis, and works as soon as Redis answers. The first-run
    keys are then not created (a deployment with an external Redis sets its admin key anyway)."""
    try:
        return asyncio.run(_first_keys(settings, demo))
    except (RedisError, OSError) as err:
        log.warning("Redis unreachable at start (%s): starting anyway; first-run keys not checked", type(err).__name__)
        return []
