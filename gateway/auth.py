"""Who is calling: turns a bearer token into a tenant (or admin) identity.

A lookup is one Redis round trip (HGETALL of the key record). Results are kept in-process for
``cache_ttl_s`` (at most one second), keyed by the keyed hash, never by the plain key, so a
revocation reaches every replica within that time while a busy key costs Redis one read per
TTL per process. Redis being unreachable is a 503, never a hang: the client has bounded timeouts.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from redis.exceptions import RedisError

from .errors import APIError
from .keys import bearer_token, hash_key, hashes_match, parse_key
from .tenants import KeyRecord, TenantStore

_CACHE_LIMIT = 50_000


@dataclass(frozen=True)
class Caller:
    key_id: str
    tenant: str
    role: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def _unauthorized(message: str) -> APIError:
    return APIError(401, message, code="invalid_api_key", headers={"www-authenticate": "Bearer"})


class Authenticator:
    def __init__(self, store: TenantStore, cache_ttl_s: float, static_admin_key: str | None) -> None:
        self.store = store
        self.cache_ttl_s = cache_ttl_s
        self._cache: dict[str, tuple[float, Caller | None]] = {}
        self._static_admin_hash = (
            hash_key(store.server_secret, static_admin_key) if static_admin_key else None
        )

    async def authenticate(self, authorization: str | None) -> Caller:
        token = bearer_token(authorization)
        if token is None:
            raise _unauthorized(
                "missing API key: send it as 'Authorization: Bearer <key>'"
            )
        presented_hash = hash_key(self.store.server_secret, token)
        if self._static_admin_hash and hashes_match(self._static_admin_hash, presented_hash):
            return Caller(key_id="static-admin", tenant="", role="admin")
        caller = await self._lookup(token, presented_hash)
        if caller is None:
            raise _unauthorized("invalid or revoked API key")
        return caller

    async def require_admin(self, authorization: str | None) -> Caller:
        caller = await self.authenticate(authorization)
        if not caller.is_admin:
            raise APIError(403, "this endpoint needs an admin key", code="admin_required")
        return caller

    async def _lookup(self, token: str, presented_hash: str) -> Caller | None:
        now = time.monotonic()
        cached = self._cache.get(presented_hash)
        if cached is not None and cached[0] > now:
            return cached[1]
        parsed = parse_key(token)
        caller = None
        if parsed is not None:
            try:
                record = await self.store.get_key(parsed.key_id)
            except (RedisError, OSError) as err:
                raise APIError(
                    503, "key store unavailable, try again", code="store_unavailable"
                ) from err
            caller = _caller_if_valid(record, presented_hash)
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[presented_hash] = (now + self.cache_ttl_s, caller)
        return caller


def _caller_if_valid(record: KeyRecord | None, presented_hash: str) -> Caller | None:
    if record is None or record.revoked:
        return None
    if not hashes_match(record.key_hash, presented_hash):
        return None
    return Caller(key_id=record.key_id, tenant=record.tenant, role=record.role)
