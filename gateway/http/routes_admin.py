"""The admin API (``/admin/*``, admin keys only): tenants, keys, router thresholds and labels,
tenants' moderation overrides. The CLI wraps it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import orjson
from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from moderation.policy import PolicyError
from moderation.policy import build as build_policy

from ..errors import APIError
from ..stages.router import THRESHOLDS_KEY
from ..state import GatewayState
from ..store.redis import as_text, is_stream_id
from . import docs

router = APIRouter(prefix="/admin", tags=["admin"], responses=docs.ADMIN)


class NewTenant(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1, max_length=63)
    name: str | None = Field(None, max_length=200)


class TenantChanges(BaseModel):
    """Fields left out stay as they are; ``prefix_cache_group: null`` gives the tenant its own cache again."""

    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, min_length=1, max_length=200)
    prefix_cache_group: str | None = Field(None, min_length=1, max_length=63, pattern=r"^[a-z0-9][a-z0-9_-]*$")


class NewKey(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tenant: str | None = Field(None, max_length=63)
    name: str = Field("", max_length=200)
    role: Literal["tenant", "admin"] = "tenant"


class RouterThresholds(BaseModel):
    """Live router thresholds; a tenant mapped to null loses its override."""

    model_config = ConfigDict(extra="forbid")
    threshold: float | None = Field(None, ge=0, le=1)
    escalation: float | None = Field(None, ge=0, le=1)
    tenants: dict[str, float | None] = Field(default_factory=dict)


class ModerationOverrides(BaseModel):
    """Per-tenant moderation: actions by category for input and output, patterns, a deny list."""

    model_config = ConfigDict(extra="forbid")
    input: dict[str, str] | None = None
    output: dict[str, str] | None = None
    patterns: list[dict[str, str]] | None = Field(None, max_length=100)
    deny_list: list[str] | None = Field(None, max_length=10_000)
    injection_threshold: float | None = Field(None, gt=0, le=1)


async def admin_gateway(request: Request) -> GatewayState:
    gateway: GatewayState = request.app.state.gateway
    await gateway.auth.require_admin(request.headers.get("authorization"))
    return gateway


@router.post("/tenants", status_code=201)
async def create_tenant(request: Request, body: NewTenant) -> dict:
    gateway = await admin_gateway(request)
    return await gateway.store.create_tenant(body.id, body.name)


@router.get("/tenants")
async def list_tenants(request: Request) -> dict:
    gateway = await admin_gateway(request)
    return {"object": "list", "data": await gateway.store.list_tenants()}


@router.patch("/tenants/{tenant_id}")
async def update_tenant(request: Request, tenant_id: str, body: TenantChanges) -> dict:
    """Rename a tenant, or put it in a prefix-cache group: tenants of one group share the engines'
    cached prefixes (a common system prompt is computed once), and so can learn, by timing or by
    ``cached_tokens``, whether another member sent a prompt. Applied within a second everywhere."""
    gateway = await admin_gateway(request)
    changes = {name: getattr(body, name) for name in body.model_fields_set}
    if changes.get("name") is None:
        changes.pop("name", None)
    return await gateway.store.update_tenant(tenant_id, changes)


@router.delete("/tenants/{tenant_id}")
async def disable_tenant(request: Request, tenant_id: str) -> dict:
    """Tenants are disabled, not erased: their keys stop working, their records stay for reports."""
    gateway = await admin_gateway(request)
    return await gateway.store.disable_tenant(tenant_id)


@router.post("/keys", status_code=201)
async def create_key(request: Request, body: NewKey) -> dict:
    """A new key; the plain key is in this answer only and is never stored."""
    gateway = await admin_gateway(request)
    plain, record = await gateway.store.create_key(body.tenant, body.name, body.role)
    return {**record.public(), "key": plain}


@router.get("/keys")
async def list_keys(request: Request, tenant: str | None = None) -> dict:
    gateway = await admin_gateway(request)
    return {"object": "list", "data": [r.public() for r in await gateway.store.list_keys(tenant)]}


@router.delete("/keys/{key_id}")
async def revoke_key(request: Request, key_id: str) -> dict:
    gateway = await admin_gateway(request)
    return (await gateway.store.revoke_key(key_id)).public()


def _floats(raw: Mapping[bytes | str, bytes | str]) -> dict[str, float]:
    """Thresholds from Redis, skipping anything that is not a number (a hand edit, say)."""
    values = {}
    for key, value in raw.items():
        try:
            values[as_text(key)] = float(value)
        except ValueError:
            continue
    return values


@router.get("/router/thresholds")
async def get_thresholds(request: Request) -> dict:
    gateway = await admin_gateway(request)
    raw = _floats(await gateway.redis.hgetall(THRESHOLDS_KEY))
    default = gateway.settings.router.threshold if gateway.settings.router else None
    return {
        "threshold": raw.get("global", default),
        "escalation": raw.get("escalation"),
        "tenants": {k.removeprefix("tenant:"): v for k, v in raw.items() if k.startswith("tenant:")},
    }


@router.put("/router/thresholds")
async def set_thresholds(request: Request, body: RouterThresholds) -> dict:
    """Every replica applies a change within a second (workers refresh twice a second)."""
    gateway = await admin_gateway(request)
    for tenant, value in body.tenants.items():
        if value is not None and not 0 <= value <= 1:
            raise APIError(400, f"tenants.{tenant}: threshold must be between 0 and 1", code="invalid_value")
    async with gateway.redis.pipeline(transaction=False) as pipe:  # one key; also fine on a Cluster
        if body.threshold is not None:
            pipe.hset(THRESHOLDS_KEY, "global", body.threshold)
        if body.escalation is not None:
            pipe.hset(THRESHOLDS_KEY, "escalation", body.escalation)
        for tenant, value in body.tenants.items():
            if value is None:
                pipe.hdel(THRESHOLDS_KEY, f"tenant:{tenant}")
            else:
                pipe.hset(THRESHOLDS_KEY, f"tenant:{tenant}", value)
        await pipe.execute()
    return await get_thresholds(request)


@router.get("/router/labels")
async def router_labels(request: Request, after: str | None = Query(None, max_length=41),
                        limit: int = Query(1000, ge=1, le=10_000)) -> dict:
    """Cascade outcomes as router training data (prompt, weak, strong), oldest first."""
    gateway = await admin_gateway(request)
    if gateway.labels is None:
        raise APIError(404, "labels are not kept (router.cascade.keep_labels is off or there is no router)",
                       code="labels_disabled")
    if after is not None and not is_stream_id(after):
        raise APIError(400, "after must be a cursor returned as next", code="invalid_value", param="after")
    labels, cursor = await gateway.labels.read(after, limit)
    return {"object": "list", "data": labels, "next": cursor}


@router.get("/tenants/{tenant_id}/moderation")
async def get_moderation(request: Request, tenant_id: str) -> dict:
    """A tenant's moderation overrides and the policy in force for it."""
    gateway = await admin_gateway(request)
    fields = await gateway.store.existing_tenant_fields(tenant_id)
    overrides = orjson.loads(fields["moderation"]) if fields.get("moderation") else {}
    effective = None
    if gateway.moderation is not None:
        rules = gateway.moderation.policy_for(fields.get("moderation"))
        effective = {"input": dict(rules.input), "output": dict(rules.output), "deny_list": list(rules.deny_words),
                     "patterns": [name for name, _ in rules.patterns], "injection_threshold": rules.injection_threshold}
    return {"tenant_id": tenant_id, "overrides": overrides, "effective": effective}


@router.put("/tenants/{tenant_id}/moderation")
async def set_moderation(request: Request, tenant_id: str, body: ModerationOverrides) -> dict:
    """Replace a tenant's overrides (an empty body removes them); applied within a second everywhere."""
    gateway = await admin_gateway(request)
    if await gateway.store.get_tenant(tenant_id) is None:
        raise APIError(404, f"no tenant {tenant_id!r}", code="tenant_not_found")
    document = body.model_dump(exclude_none=True)
    try:
        build_policy(document, gateway.moderation.base if gateway.moderation else None)
    except PolicyError as err:
        raise APIError(400, str(err), code="invalid_value") from None
    if document:
        await gateway.redis.hset(f"tg:tenant:{tenant_id}", "moderation", orjson.dumps(document))
    else:
        await gateway.redis.hdel(f"tg:tenant:{tenant_id}", "moderation")
    return await get_moderation(request, tenant_id)
