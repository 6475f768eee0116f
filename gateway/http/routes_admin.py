"""The admin API (``/admin/*``, admin keys only): tenants, keys, router thresholds and labels,
tenants' moderation overrides. The CLI wraps it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from redis.exceptions import RedisError

from moderation.policy import PolicyError
from moderation.policy import build as build_policy
from router.calibrate import share_at_or_above

from ..errors import APIError
from ..stages.accounting.ledger import stream_key
from ..stages.router import THRESHOLDS_KEY
from ..state import GatewayState
from ..store.redis import as_text, is_stream_id
from ..store.tenants import KeyTerms
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


_TAG = r"^[A-Za-z0-9_.:/-]{1,64}$"  # no '|': tags name report rows
_DURATION = r"^[1-9][0-9]{0,5}[smhdw]$"
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def duration_seconds(text: str) -> float:
    """``90s``, ``15m``, ``12h``, ``30d`` or ``4w`` in seconds."""
    return int(text[:-1]) * _SECONDS[text[-1]]


class KeyTermsBody(BaseModel):
    """Expiry (``expires_in`` from now, or ``expires_at`` in epoch seconds; null: never), the
    public models the key may call (null: all), tags (report rows) and free metadata."""

    model_config = ConfigDict(extra="forbid")
    expires_in: str | None = Field(None, pattern=_DURATION, description="e.g. 30d, 12h, 4w")
    expires_at: float | None = Field(None, gt=0, description="epoch seconds")
    models: list[str] | None = Field(None, max_length=100)
    tags: list[Annotated[str, Field(pattern=_TAG)]] | None = Field(None, max_length=20)
    metadata: dict[str, Annotated[str, Field(max_length=500)]] | None = Field(None, max_length=20)

    def terms(self, known_models: set[str]) -> dict[str, object]:
        """The fields this body sets, checked: models must be ones the gateway serves."""
        fields = self.model_fields_set
        out: dict[str, object] = {}
        if "expires_in" in fields or "expires_at" in fields:
            if self.expires_in and self.expires_at:
                raise APIError(400, "give expires_in or expires_at, not both", code="invalid_value", param="expires_in")
            out["expires"] = time.time() + duration_seconds(self.expires_in) if self.expires_in else self.expires_at
        if "models" in fields:
            unknown = sorted(set(self.models or ()) - known_models)
            if unknown:
                raise APIError(400, f"unknown models {', '.join(unknown)}; known: {', '.join(sorted(known_models))}",
                               code="invalid_value", param="models")
            out["models"] = tuple(dict.fromkeys(self.models or ()))
        if "tags" in fields:
            out["tags"] = tuple(dict.fromkeys(self.tags or ()))
        if "metadata" in fields:
            out["metadata"] = dict(self.metadata or {})
        return out


class NewKey(KeyTermsBody):
    tenant: str | None = Field(None, max_length=63)
    name: str = Field("", max_length=200)
    role: Literal["tenant", "admin"] = "tenant"


class KeyChanges(KeyTermsBody):
    """Fields left out stay as they are."""

    name: str | None = Field(None, max_length=200)


class Rotation(BaseModel):
    model_config = ConfigDict(extra="forbid")
    overlap: str = Field("24h", pattern=_DURATION, description="how long the old secret keeps working")


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


def _known_models(gateway: GatewayState) -> set[str]:
    """What a key may be limited to: the configured models, and the router's names when it has one."""
    routed = {"auto", "cascade"} if gateway.settings.router else set()
    return {m.name for m in gateway.settings.models} | routed


@router.post("/keys", status_code=201)
async def create_key(request: Request, body: NewKey) -> dict:
    """A new key; the plain key is in this answer only and is never stored."""
    gateway = await admin_gateway(request)
    terms = KeyTerms(**body.terms(_known_models(gateway)))  # type: ignore[arg-type]
    plain, record = await gateway.store.create_key(body.tenant, body.name, body.role, terms)
    return {**record.public(), "key": plain}


@router.patch("/keys/{key_id}")
async def update_key(request: Request, key_id: str, body: KeyChanges) -> dict:
    """Change a key's name, expiry, allowed models, tags or metadata; every replica applies it within a second."""
    gateway = await admin_gateway(request)
    return (await gateway.store.update_key(key_id, body.name, body.terms(_known_models(gateway)))).public()


@router.post("/keys/{key_id}/rotate")
async def rotate_key(request: Request, key_id: str, body: Rotation) -> dict:
    """A new secret for the same key id (limits, tags, records and reports carry on); the old one
    keeps working for ``overlap`` so clients can move over. The new key is in this answer only."""
    gateway = await admin_gateway(request)
    plain, record = await gateway.store.rotate_key(key_id, duration_seconds(body.overlap))
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
    """The values in force (a live override, else the config's), and apart from them the config's
    values and the live overrides, so that nobody reads a missing override as a missing setting."""
    raw = _floats(await gateway.redis.hgetall(THRESHOLDS_KEY))
    config = gateway.settings.router
    configured = {"threshold": config.threshold if config else None,
                  "escalation": config.cascade.escalation_threshold if config else None}
    overrides = {"threshold": raw.get("global"), "escalation": raw.get("escalation")}
    tenants = {k.removeprefix("tenant:"): v for k, v in raw.items() if k.startswith("tenant:")}
    return {
        "threshold": overrides["threshold"] if overrides["threshold"] is not None else configured["threshold"],
        "escalation": overrides["escalation"] if overrides["escalation"] is not None else configured["escalation"],
        "tenants": tenants,
        "configured": configured,
        "overrides": {**overrides, "tenants": tenants},
    }


@router.put("/router/thresholds")
async def set_thresholds(request: Request, body: RouterThresholds) -> dict:
    """Every replica applies a change within a second (workers refresh twice a second). A field
    set to null removes its live override (the config's value applies again)."""
    gateway = await admin_gateway(request)
    for tenant, value in body.tenants.items():
        if value is not None and not 0 <= value <= 1:
            raise APIError(400, f"tenants.{tenant}: threshold must be between 0 and 1", code="invalid_value")
    async with gateway.redis.pipeline(transaction=False) as pipe:  # one key; also fine on a Cluster
        for field, value in (("global", body.threshold), ("escalation", body.escalation)):
            if value is not None:
                pipe.hset(THRESHOLDS_KEY, field, value)
            elif ("threshold" if field == "global" else field) in body.model_fields_set:
                pipe.hdel(THRESHOLDS_KEY, field)  # an explicit null: back to the config's value
        for tenant, value in body.tenants.items():
            if value is None:
                pipe.hdel(THRESHOLDS_KEY, f"tenant:{tenant}")
            else:
                pipe.hset(THRESHOLDS_KEY, f"tenant:{tenant}", value)
        await pipe.execute()
    return await get_thresholds(request)


@router.get("/router/curve")
async def router_curve(request: Request, per_tenant: int = Query(2000, ge=10, le=20_000)) -> dict:
    """How the global threshold would split recent live traffic: for thresholds 0 to 1, the share of
    the last ``per_tenant`` routed calls of each tenant (their recorded router scores) that would go
    to the flagship; and for the cascade's escalation threshold, the share of recent cascade calls
    whose confidence falls below it (they would escalate). The console draws both beside the
    thresholds in force."""
    gateway = await admin_gateway(request)
    try:
        tenants = await gateway.store.tenant_ids()
        async with gateway.redis.pipeline(transaction=False) as pipe:
            for tenant in tenants:
                pipe.xrevrange(stream_key(tenant), count=per_tenant)
            replies = await pipe.execute()
    except (RedisError, OSError):
        raise APIError(503, "ledger unavailable, try again", code="store_unavailable") from None
    # thousands of records per tenant: parsed off the event loop, which goes on serving calls
    scores, confidences = await asyncio.to_thread(_scores_and_confidences, replies)
    grid = [round(i / 20, 2) for i in range(21)]
    escalating = [1 - share for share in share_at_or_above(confidences, grid)] if confidences else [0.0] * len(grid)
    return {"routed_calls": len(scores), "cascade_calls": len(confidences), "thresholds": grid,
            "flagship_share": share_at_or_above(scores, grid), "escalation_share": escalating}


def _scores_and_confidences(replies: list[Any]) -> tuple[list[float], list[float]]:
    """Router scores of routed calls, and the cascade's confidences, from ledger stream entries."""
    scores: list[float] = []
    confidences: list[float] = []
    for entries in replies:
        for _, fields in entries:
            record = orjson.loads(fields[b"r"])
            if record.get("route") in ("router", "cascade") and isinstance(record.get("router_score"), (int, float)):
                scores.append(float(record["router_score"]))
            if record.get("route") == "cascade" and isinstance(record.get("cascade_confidence"), (int, float)):
                confidences.append(float(record["cascade_confidence"]))
    return scores, confidences


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
