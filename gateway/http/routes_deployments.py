"""Router rollout (admin keys only): deploy a router artifact live, shadow it beside the serving one,
compare them on live traffic, promote it, roll back; globally or for one tenant. The CLI's
``tollgate router deploy / compare / promote / rollback / discard / deployments`` wrap it."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import orjson
from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from redis.exceptions import RedisError

from router.model import RouterFileError

from ..errors import APIError
from ..stages.accounting.ledger import stream_key
from ..stages.router_compare import on_labels, projected, shadowed
from ..stages.router_deployments import (
    DeploymentError,
    Deployments,
    change,
    describe,
    read_slots,
    scope_of,
    store_artifact,
)
from ..state import GatewayState
from . import docs
from .routes_admin import admin_gateway

router = APIRouter(prefix="/admin/router", tags=["admin"], responses=docs.ADMIN)
_TENANT = r"^[a-z0-9][a-z0-9_-]*$"


class Deployment(BaseModel):
    model_config = ConfigDict(extra="forbid")
    artifact: dict[str, Any] = Field(description="a router as written by `tollgate router train`")
    shadow: bool = Field(False, description="score beside the serving router without acting on it")
    tenant: str | None = Field(None, max_length=63, pattern=_TENANT, description="this tenant's own router")


class Scope(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tenant: str | None = Field(None, max_length=63, pattern=_TENANT)


async def _routed(request: Request) -> GatewayState:
    gateway = await admin_gateway(request)
    if gateway.settings.router is None:
        raise APIError(404, "there is no router (the `router` config block)", code="router_not_configured")
    return gateway


async def _state(gateway: GatewayState) -> dict[str, Any]:
    """The slots as stored, and what this worker has loaded (the same within a second everywhere)."""
    slots = await read_slots(gateway.redis)
    in_force: Deployments = gateway.router.deployments
    configured = gateway.router.configured

    def shown(deployed: Any) -> dict[str, Any] | None:
        return None if deployed is None else {"version": deployed.version, **describe(deployed.model)}

    def scope(name: str, serving: Any, shadow: Any) -> dict[str, Any]:
        since = slots.get(f"{name}:shadow_since")
        return {"serving": shown(serving), "shadow": shown(shadow),
                "shadow_since": float(since) if since else None,
                "history": json.loads(slots.get(f"{name}:history", "[]"))}

    tenants = {tenant: scope(f"tenant:{tenant}", in_force.tenants.get(tenant), in_force.tenant_shadows.get(tenant))
               for tenant in sorted(set(in_force.tenants) | set(in_force.tenant_shadows))}
    return {"configured": shown(configured), "global": scope("global", in_force.serving, in_force.shadow),
            "tenants": tenants}


async def _change(request: Request, operation: str, tenant: str | None, version: str = "") -> dict[str, Any]:
    gateway = await _routed(request)
    try:
        await change(gateway.redis, operation, tenant, version, time.time())
        await gateway.router.refresh()  # this worker at once; the others within a second
        return await _state(gateway)
    except DeploymentError as err:
        raise APIError(409, str(err), code="nothing_to_" + operation) from None
    except (RedisError, OSError):
        raise APIError(503, "router deployments unavailable (Redis), try again", code="store_unavailable") from None


@router.get("/deployments")
async def deployments(request: Request) -> dict[str, Any]:
    """Which router serves (globally and per tenant), which shadows it, and what rollback returns to."""
    gateway = await _routed(request)
    try:
        return await _state(gateway)
    except (RedisError, OSError):
        raise APIError(503, "router deployments unavailable (Redis), try again", code="store_unavailable") from None


@router.post("/deploy")
async def deploy(request: Request, body: Deployment) -> dict[str, Any]:
    """Store an artifact and make it serve (the one serving goes on the rollback history), or shadow."""
    gateway = await _routed(request)
    if body.tenant is not None and await gateway.store.get_tenant(body.tenant) is None:
        raise APIError(404, f"no tenant {body.tenant!r}", code="tenant_not_found")
    try:
        version = await store_artifact(gateway.redis, body.artifact)
    except RouterFileError as err:
        raise APIError(400, str(err), code="invalid_router", param="artifact") from None
    except (RedisError, OSError):
        raise APIError(503, "router deployments unavailable (Redis), try again", code="store_unavailable") from None
    return await _change(request, "shadow" if body.shadow else "serve", body.tenant, version)


@router.post("/promote")
async def promote(request: Request, body: Scope) -> dict[str, Any]:
    """The shadow serves from now on; the router it replaces goes on the rollback history."""
    return await _change(request, "promote", body.tenant)


@router.post("/rollback")
async def rollback(request: Request, body: Scope) -> dict[str, Any]:
    """Back to the router that served before (for a tenant, at the end: the global router)."""
    return await _change(request, "rollback", body.tenant)


@router.post("/discard")
async def discard(request: Request, body: Scope) -> dict[str, Any]:
    """Stop shadowing (the candidate is dropped; the serving router is untouched)."""
    return await _change(request, "discard", body.tenant)


@router.get("/compare")
async def compare(request: Request, tenant: str | None = Query(None, max_length=63, pattern=_TENANT),
                  per_tenant: int = Query(20_000, ge=10, le=200_000),
                  labels: int = Query(5_000, ge=0, le=50_000)) -> dict[str, Any]:
    """The shadow against the serving router: on the last ``per_tenant`` calls of each tenant (or of
    ``tenant``) it scored, and on the last ``labels`` cascade labels."""
    gateway = await _routed(request)
    in_force = gateway.router.deployments
    shadow = in_force.tenant_shadows.get(tenant) if tenant else in_force.shadow
    serving = in_force.serving_for(tenant) if tenant else in_force.serving
    if shadow is None or serving is None:
        raise APIError(409, f"no candidate router is shadowing {scope_of(tenant)}: deploy one with "
                            "`router deploy --shadow`", code="nothing_to_compare")
    try:
        tenants = [tenant] if tenant else await gateway.store.tenant_ids()
        async with gateway.redis.pipeline(transaction=False) as pipe:
            for name in tenants:
                pipe.xrevrange(stream_key(name), count=per_tenant)
            replies = await pipe.execute()
        kept = (await gateway.labels.read(None, labels, newest=True))[0] if gateway.labels and labels else []
    except (RedisError, OSError):
        raise APIError(503, "ledger unavailable, try again", code="store_unavailable") from None
    if tenant:
        kept = [label for label in kept if label.get("tenant") == tenant]
    config = gateway.settings.router
    assert config is not None
    cheap, flagship = config.cheap, config.flagship

    def measure() -> dict[str, Any]:
        records = shadowed((orjson.loads(fields[b"r"]) for entries in replies for _, fields in entries), shadow.version)
        return {"live": projected(records, cheap, flagship), "cascade_labels": on_labels(kept, serving.model, shadow.model)}

    # Parsing tens of thousands of records and scoring thousands of labels with two routers takes
    # CPU seconds: in a thread, this worker's event loop goes on serving calls meanwhile.
    measured = await asyncio.to_thread(measure)
    return {"scope": scope_of(tenant), "serving_version": serving.version, "shadow_version": shadow.version,
            "cheap": cheap, "flagship": flagship, **measured}
