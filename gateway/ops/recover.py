"""``tollgate admin recover``: a new admin key when the last one is lost.

Run on the gateway's host, by someone who can read its data directory (or who holds
``TOLLGATE_KEY_SECRET`` and the Redis URL): that access already owns the gateway, so it is what
proves the right to a new key. The key is written straight into the store, hashed with the same
secret the gateway uses; with the embedded Valkey, the running server is used (its port file in
the data directory), or, when the gateway is stopped, the server is started on the same data for
the moment it takes. ``revoke_others`` also revokes every other admin key (one may have leaked).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path

from ..config import Settings
from ..store.redis import redis_client
from ..store.tenants import TenantStore
from .embedded import embedded_valkey, running_embedded_url


class RecoveryError(RuntimeError):
    """Recovery cannot proceed; the message says what is missing."""


def key_secret(settings: Settings) -> str:
    """The secret the gateway hashes keys with: configured, or the data directory's. Never a new
    one: keys hashed with another secret would not match."""
    if settings.auth.key_hash_secret:
        return settings.auth.key_hash_secret
    path = Path(settings.data_dir) / "key_hash_secret"
    try:
        return path.read_text().strip()
    except OSError:
        raise RecoveryError(f"no key-hashing secret: {path} is not readable and TOLLGATE_KEY_SECRET is unset "
                            "(run this on the gateway's host, with its --config)") from None


@contextlib.contextmanager
def _store_url(settings: Settings) -> Iterator[str]:
    if settings.redis_url:
        yield settings.redis_url
        return
    data_dir = Path(settings.data_dir)
    running = running_embedded_url(data_dir)
    if running:
        yield running
        return
    if not (data_dir / "valkey").is_dir():
        raise RecoveryError(f"no gateway data in {data_dir}: pass the gateway's --config, or set REDIS_URL")
    with embedded_valkey(data_dir) as url:  # the gateway is stopped: its own data, for a moment
        yield url


async def _recover(url: str, secret: str, name: str, revoke_others: bool) -> tuple[str, list[str]]:
    redis = redis_client(url)
    try:
        store = TenantStore(redis, secret.encode())
        revoked = []
        if revoke_others:
            for record in await store.list_keys():
                if record.role == "admin" and not record.revoked:
                    await store.revoke_key(record.key_id)
                    revoked.append(record.key_id)
        plain, _ = await store.create_key(None, name=name, role="admin")
        return plain, revoked
    finally:
        await redis.aclose()


def recover_admin_key(settings: Settings, name: str = "recovered admin", revoke_others: bool = False) -> tuple[str, list[str]]:
    """A new admin key (plain, shown once) and the ids of the admin keys revoked."""
    secret = key_secret(settings)
    with _store_url(settings) as url:
        return asyncio.run(_recover(url, secret, name, revoke_others))
