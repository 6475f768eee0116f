"""Who is calling: turns a bearer token into a tenant (or admin) identity.

A lookup is one Redis round trip (HGETALL of the key record). Results are kept in-process for
``cache_ttl_s`` (at most one second), keyed by the keyed hash, never by the plain key, so a
revocation reaches every replica within that time while a busy key costs Redis one read per
TTL per process. When Redis is unreachable, a key verified within ``stale_on_error_s`` keeps
working (revocations wait for Redis); an unknown key gets 503, never a hang (bounded timeouts).
The caller's effective limits are read with the key and cached with it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from redis.exceptions import RedisError

from .. import metrics
from ..errors import APIError
from ..logs import Warnings
from ..store.keys import bearer_token, hash_key, hashes_match, parse_key
from ..store.tenants import KeyRecord, TenantStore
from .accounting.limits import CallerLimits, LimitSet, resolve

_CACHE_LIMIT = 50_000
throttled = Warnings(logging.getLogger("tollgate.auth"))


_NO_LIMITS = CallerLimits(LimitSet(), LimitSet())


@dataclass(frozen=True)
class Caller:
    key_id: str
    tenant: str
    role: str
    limits: CallerLimits = _NO_LIMITS
    moderation: str | None = None  # the tenant's moderation overrides (JSON), if any
    cache_group: str = ""  # whose prefix cache the tenant shares: its own id unless an admin grouped it
    expires: float | None = None  # epoch seconds: checked on every call, cached or not
    models: frozenset[str] | None = None  # the public models the key may call; None: all
    tags: tuple[str, ...] = ()
    task: str | None = None  # the key's default task hint for the router (its tollgate_task metadata)

    def may_call(self, model: str) -> bool:
        return self.models is None or model in self.models

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


_Entry = tuple  # (expires, caller or None, fetched at), monotonic seconds


def model_not_allowed(model: str, allowed: frozenset[str] | None) -> APIError:
    names = ", ".join(sorted(allowed or ()))
    return APIError(403, f"this API key may not call model {model[:100]!r}; it may call: {names}",
                    code="model_not_allowed", param="model")


def _unauthorized(message: str) -> APIError:
    return APIError(401, message, code="invalid_api_key", headers={"www-authenticate": "Bearer"})


class Authenticator:
    def __init__(self, store: TenantStore, cache_ttl_s: float, static_admin_key: str | None, *,
                 limit_defaults: tuple[LimitSet, LimitSet] = (LimitSet(), LimitSet()),
                 stale_on_error_s: float = 300.0) -> None:
        self.store = store
        self.cache_ttl_s = cache_ttl_s
        self.limit_defaults = limit_defaults
        self.stale_on_error_s = stale_on_error_s
        self._cache: dict[str, _Entry] = {}
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
        if caller.expires is not None and time.time() >= caller.expires:
            raise _unauthorized("API key expired: ask your administrator for a new one")
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
                caller = await self._fetch(parsed.key_id, presented_hash)
            except (RedisError, OSError) as err:
                return self._stale_or_unavailable(cached, now, err)
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[presented_hash] = (now + self.cache_ttl_s, caller, now)
        return caller

    async def _fetch(self, key_id: str, presented_hash: str) -> Caller | None:
        record = await self.store.get_key(key_id)
        caller = _caller_if_valid(record, presented_hash)
        if record is None or caller is None or caller.is_admin:
            return caller
        tenant_fields = await self.store.tenant_fields(caller.tenant)
        if not tenant_fields or tenant_fields.get("disabled") == "1":
            return None
        limits = resolve(*self.limit_defaults, tenant_fields, record.limit_fields)
        return Caller(caller.key_id, caller.tenant, caller.role, limits, tenant_fields.get("moderation"),
                      tenant_fields.get("prefix_cache_group") or caller.tenant, caller.expires, caller.models, caller.tags, caller.task)

    def _stale_or_unavailable(self, cached: _Entry | None, now: float, err: Exception) -> Caller | None:
        """Redis is unreachable: a key verified recently keeps working (fail open for known keys)."""
        metrics.STORE_ERRORS.labels("auth").inc()
        throttled.warn(f"key lookups failing: {type(err).__name__}: {err}", key="auth")
        if cached is not None and now - cached[2] <= self.stale_on_error_s:
            return cached[1]
        raise APIError(503, "key store unavailable, try again", code="store_unavailable") from err


def _caller_if_valid(record: KeyRecord | None, presented_hash: str) -> Caller | None:
    """The key's caller if the presented secret is its current one, or its previous one within the
    rotation's overlap. (Expiry is checked on every call by ``authenticate``, so that an expired key
    says so rather than looking unknown.)"""
    if record is None or record.revoked:
        return None
    current = hashes_match(record.key_hash, presented_hash)
    previous = bool(record.previous_hash) and hashes_match(record.previous_hash, presented_hash)
    if not current and not (previous and time.time() < record.previous_until):
        return None
    return Caller(key_id=record.key_id, tenant=record.tenant, role=record.role, expires=record.expires,
                  models=frozenset(record.models) if record.models else None, tags=record.tags,
                  task=record.metadata.get("tollgate_task") or None)
