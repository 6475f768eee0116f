"""Tenants and their API keys, stored in Redis so every gateway replica sees the same state.

Layout (all under the ``tg:`` prefix):
  ``tg:tenants``             set of tenant ids
  ``tg:tenant:<id>``         hash: id, name, created, disabled
  ``tg:tenant:<id>:keys``    set of key ids
  ``tg:key:<key_id>``        hash: id, tenant, name, role, hash, created, revoked; and, when set,
                             expires, models, tags, metadata (JSON), prev_hash and prev_until
A key record is found by its public id in one round trip; the secret part is checked against
the stored keyed hash. Revoking sets ``revoked`` and every replica's short auth cache expires.
Rotation gives a key id a new secret and keeps the old one's hash working until ``prev_until``,
so clients can move over without an outage.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

from redis.asyncio import Redis
from redis.typing import EncodableT

from ..errors import APIError
from .keys import hash_key, new_key
from .redis import as_text

Role = Literal["tenant", "admin"]
_TENANT_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


@dataclass(frozen=True)
class KeyRecord:
    key_id: str
    tenant: str
    name: str
    role: Role
    key_hash: str
    created: float
    revoked: bool
    limit_fields: dict[str, str] = field(default_factory=dict)  # "limit:<name>" overrides, prefix kept
    expires: float | None = None  # epoch seconds; None: never
    models: tuple[str, ...] = ()  # public model names it may call; empty: all
    tags: tuple[str, ...] = ()  # report dimensions (``group_by=tag``)
    metadata: dict[str, str] = field(default_factory=dict)  # the operator's own notes (owner, cost centre)
    previous_hash: str = ""  # the secret before the last rotation, accepted until ``previous_until``
    previous_until: float = 0.0

    def public(self) -> dict[str, object]:
        """What may be shown about a key: never its hash."""
        return {
            "id": self.key_id,
            "tenant": self.tenant or None,
            "name": self.name,
            "role": self.role,
            "created": int(self.created),
            "revoked": self.revoked,
            "expires": None if self.expires is None else int(self.expires),
            "models": list(self.models) or None,
            "tags": list(self.tags),
            "metadata": self.metadata,
            "previous_secret_until": int(self.previous_until) if self.previous_until > time.time() else None,
        }

    def expired(self, now: float) -> bool:
        return self.expires is not None and now >= self.expires


def _decode(raw: Mapping[bytes | str, bytes | str]) -> dict[str, str]:
    return {as_text(k): as_text(v) for k, v in raw.items()}


def key_record_from_hash(raw: Mapping[bytes | str, bytes | str]) -> KeyRecord | None:
    if not raw:
        return None
    fields = _decode(raw)
    return KeyRecord(
        key_id=fields["id"],
        tenant=fields.get("tenant", ""),
        name=fields.get("name", ""),
        role="admin" if fields.get("role") == "admin" else "tenant",
        key_hash=fields["hash"],
        created=float(fields.get("created", 0)),
        revoked=fields.get("revoked") == "1",
        limit_fields={k: v for k, v in fields.items() if k.startswith("limit:")},
        expires=float(fields["expires"]) if fields.get("expires") else None,
        models=tuple(_json_list(fields.get("models"))),
        tags=tuple(_json_list(fields.get("tags"))),
        metadata=_json_object(fields.get("metadata")),
        previous_hash=fields.get("prev_hash", ""),
        previous_until=float(fields.get("prev_until") or 0),
    )


def _json_list(text: str | None) -> list[str]:
    try:
        value = json.loads(text) if text else []
    except ValueError:
        return []
    return [str(v) for v in value] if isinstance(value, list) else []


def _json_object(text: str | None) -> dict[str, str]:
    try:
        value = json.loads(text) if text else {}
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


@dataclass(frozen=True)
class KeyTerms:
    """What an operator sets on a key besides its name: expiry, models, tags, metadata."""

    expires: float | None = None
    models: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    metadata: dict[str, str] = field(default_factory=dict)

    def fields(self) -> dict[EncodableT, EncodableT]:
        return {"expires": "" if self.expires is None else repr(self.expires), "models": json.dumps(list(self.models)),
                "tags": json.dumps(list(self.tags)), "metadata": json.dumps(self.metadata)}


class TenantStore:
    """CRUD for tenants and keys; the admin API and bootstrap use it, the request path only reads."""

    def __init__(self, redis: Redis, server_secret: bytes) -> None:
        self.redis = redis
        self.server_secret = server_secret

    async def create_tenant(self, tenant_id: str, name: str | None = None) -> dict[str, object]:
        if not _TENANT_ID.match(tenant_id):
            raise APIError(
                400,
                "tenant id must be 1-63 lowercase letters, digits, '-' or '_'",
                code="invalid_value",
                param="id",
            )
        created = time.time()
        record: dict[EncodableT, EncodableT] = {"id": tenant_id, "name": name or tenant_id, "created": str(created), "disabled": "0"}
        if not await self.redis.sadd("tg:tenants", tenant_id):
            raise APIError(409, f"tenant {tenant_id!r} already exists", code="tenant_exists")
        await self.redis.hset(f"tg:tenant:{tenant_id}", mapping=record)
        return {"id": tenant_id, "name": record["name"], "created": int(created), "disabled": False}

    async def get_tenant(self, tenant_id: str) -> dict[str, object] | None:
        raw = await self.redis.hgetall(f"tg:tenant:{tenant_id}")
        if not raw:
            return None
        fields = _decode(raw)
        return {
            "id": fields["id"],
            "name": fields.get("name", fields["id"]),
            "created": int(float(fields.get("created", 0))),
            "disabled": fields.get("disabled") == "1",
            "prefix_cache_group": fields.get("prefix_cache_group") or None,
        }

    async def update_tenant(self, tenant_id: str, changes: dict[str, str | None]) -> dict[str, object]:
        """Change a tenant's name or prefix-cache group (None removes the group: back to its own)."""
        if await self.get_tenant(tenant_id) is None:
            raise APIError(404, f"no tenant {tenant_id!r}", code="tenant_not_found")
        async with self.redis.pipeline(transaction=False) as pipe:  # one key; also fine on a Cluster
            for name, value in changes.items():
                if value is None:
                    pipe.hdel(f"tg:tenant:{tenant_id}", name)
                else:
                    pipe.hset(f"tg:tenant:{tenant_id}", name, value)
            await pipe.execute()
        return await self.get_tenant(tenant_id) or {}

    async def tenant_fields(self, tenant_id: str) -> dict[str, str]:
        """The tenant's raw hash (limits overrides included); empty when there is no such tenant."""
        return _decode(await self.redis.hgetall(f"tg:tenant:{tenant_id}"))

    async def existing_tenant_fields(self, tenant_id: str) -> dict[str, str]:
        """The tenant's raw hash, or a 404 naming the tenant."""
        fields = await self.tenant_fields(tenant_id)
        if not fields:
            raise APIError(404, f"no tenant {tenant_id!r}", code="tenant_not_found")
        return fields

    async def list_tenants(self) -> list[dict[str, object]]:
        ids = sorted(as_text(member) for member in await self.redis.smembers("tg:tenants"))
        tenants = [await self.get_tenant(tenant_id) for tenant_id in ids]
        return [t for t in tenants if t is not None]

    async def disable_tenant(self, tenant_id: str) -> dict[str, object]:
        """Disable a tenant: all its keys are revoked, its records stay for reports."""
        tenant = await self.get_tenant(tenant_id)
        if tenant is None:
            raise APIError(404, f"no tenant {tenant_id!r}", code="tenant_not_found")
        await self.redis.hset(f"tg:tenant:{tenant_id}", "disabled", "1")
        for key_id in await self.redis.smembers(f"tg:tenant:{tenant_id}:keys"):
            await self.redis.hset(f"tg:key:{as_text(key_id)}", "revoked", "1")
        return {**tenant, "disabled": True}

    async def create_key(self, tenant_id: str | None, name: str = "", role: Role = "tenant",
                         terms: KeyTerms | None = None) -> tuple[str, KeyRecord]:
        """A new key: returns the plain key (shown once, never stored) and its record."""
        if role == "tenant":
            tenant = await self.get_tenant(tenant_id or "")
            if tenant is None:
                raise APIError(404, f"no tenant {tenant_id!r}", code="tenant_not_found", param="tenant")
            if tenant["disabled"]:
                raise APIError(409, f"tenant {tenant_id!r} is disabled", code="tenant_disabled")
        key = new_key()
        record = KeyRecord(
            key_id=key.key_id,
            tenant=(tenant_id or "") if role == "tenant" else "",
            name=name,
            role=role,
            key_hash=hash_key(self.server_secret, key.full),
            created=time.time(),
            revoked=False,
        )
        if terms is not None:
            record = replace(record, expires=terms.expires, models=terms.models, tags=terms.tags, metadata=terms.metadata)
        await self._save_key(record)
        return key.full, record

    async def _save_key(self, record: KeyRecord) -> None:
        mapping: dict[EncodableT, EncodableT] = {
            "id": record.key_id,
            "tenant": record.tenant,
            "name": record.name,
            "role": record.role,
            "hash": record.key_hash,
            "created": str(record.created),
            "revoked": "1" if record.revoked else "0",
            **KeyTerms(record.expires, record.models, record.tags, record.metadata).fields(),
        }
        # Two writes, not a transaction: the keys live in different slots on a Redis Cluster. The
        # record first, so an id listed in the index always has a record.
        await self.redis.hset(f"tg:key:{record.key_id}", mapping=mapping)
        await self.redis.sadd(f"tg:tenant:{record.tenant or '_admin'}:keys", record.key_id)

    async def get_key(self, key_id: str) -> KeyRecord | None:
        return key_record_from_hash(await self.redis.hgetall(f"tg:key:{key_id}"))

    async def list_keys(self, tenant_id: str | None = None) -> list[KeyRecord]:
        owners = [tenant_id] if tenant_id else [*await self.tenant_ids(), "_admin"]
        records: list[KeyRecord] = []
        for owner in owners:
            for key_id in sorted(await self.redis.smembers(f"tg:tenant:{owner}:keys")):
                record = await self.get_key(as_text(key_id))
                if record is not None:
                    records.append(record)
        return records

    async def tenant_ids(self) -> list[str]:
        return sorted(as_text(member) for member in await self.redis.smembers("tg:tenants"))

    async def revoke_key(self, key_id: str) -> KeyRecord:
        record = await self.get_key(key_id)
        if record is None:
            raise APIError(404, f"no key {key_id!r}", code="key_not_found")
        await self.redis.hset(f"tg:key:{key_id}", "revoked", "1")
        return await self.get_key(key_id) or record

    async def update_key(self, key_id: str, name: str | None, terms: dict[str, object]) -> KeyRecord:
        """Change a key's name, expiry, models, tags or metadata (only the ones given)."""
        record = await self.get_key(key_id)
        if record is None:
            raise APIError(404, f"no key {key_id!r}", code="key_not_found")
        current = KeyTerms(record.expires, record.models, record.tags, record.metadata)
        changed = replace(current, **terms)  # type: ignore[arg-type]
        mapping: dict[EncodableT, EncodableT] = {k: v for k, v in changed.fields().items() if k in terms}
        if name is not None:
            mapping["name"] = name
        if mapping:
            await self.redis.hset(f"tg:key:{key_id}", mapping=mapping)
        return await self.get_key(key_id) or record

    async def rotate_key(self, key_id: str, overlap_s: float) -> tuple[str, KeyRecord]:
        """A new secret for the same key id (its limits, tags, records and reports carry on); the old
        secret keeps working for ``overlap_s`` seconds so clients can move over."""
        record = await self.get_key(key_id)
        if record is None or record.revoked:
            raise APIError(404, f"no active key {key_id!r}", code="key_not_found")
        key = new_key(key_id)
        await self.redis.hset(f"tg:key:{key_id}", mapping={
            "hash": hash_key(self.server_secret, key.full), "prev_hash": record.key_hash,
            "prev_until": repr(time.time() + overlap_s)})
        return key.full, await self.get_key(key_id) or record

    async def set_limits(self, hash_key: str, prefix: str, values: dict[str, float | None]) -> None:
        """Write limit overrides under ``prefix``; None removes an override (back to the default)."""
        async with self.redis.pipeline(transaction=False) as pipe:  # one key; also fine on a Cluster
            for name, value in values.items():
                if value is None:
                    pipe.hdel(hash_key, prefix + name)
                else:
                    pipe.hset(hash_key, prefix + name, repr(value))
            await pipe.execute()

    async def set_tenant_limits(self, tenant_id: str, scope: str, values: dict[str, float | None]) -> None:
        if await self.get_tenant(tenant_id) is None:
            raise APIError(404, f"no tenant {tenant_id!r}", code="tenant_not_found")
        await self.set_limits(f"tg:tenant:{tenant_id}", f"limit:{scope}:", values)

    async def set_key_limits(self, key_id: str, values: dict[str, float | None]) -> KeyRecord:
        record = await self.get_key(key_id)
        if record is None or record.role != "tenant":
            raise APIError(404, f"no tenant key {key_id!r}", code="key_not_found")
        await self.set_limits(f"tg:key:{key_id}", "limit:", values)
        return await self.get_key(key_id) or record

    async def has_admin_key(self) -> bool:
        return bool(await self.redis.scard("tg:tenant:_admin:keys"))
