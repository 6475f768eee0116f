"""The admin API (``/admin/*``, admin keys only): tenants and their keys. The CLI wraps it."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from .state import GatewayState

router = APIRouter(prefix="/admin", tags=["admin"])


class NewTenant(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1, max_length=63)
    name: str | None = Field(None, max_length=200)


class NewKey(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tenant: str | None = Field(None, max_length=63)
    name: str = Field("", max_length=200)
    role: Literal["tenant", "admin"] = "tenant"


async def _admin(request: Request) -> GatewayState:
    gateway: GatewayState = request.app.state.gateway
    await gateway.auth.require_admin(request.headers.get("authorization"))
    return gateway


@router.post("/tenants", status_code=201)
async def create_tenant(request: Request, body: NewTenant) -> dict:
    gateway = await _admin(request)
    return await gateway.store.create_tenant(body.id, body.name)


@router.get("/tenants")
async def list_tenants(request: Request) -> dict:
    gateway = await _admin(request)
    return {"object": "list", "data": await gateway.store.list_tenants()}


@router.delete("/tenants/{tenant_id}")
async def disable_tenant(request: Request, tenant_id: str) -> dict:
    """Tenants are disabled, not erased: their keys stop working, their records stay for reports."""
    gateway = await _admin(request)
    return await gateway.store.disable_tenant(tenant_id)


@router.post("/keys", status_code=201)
async def create_key(request: Request, body: NewKey) -> dict:
    """A new key; the plain key is in this answer only and is never stored."""
    gateway = await _admin(request)
    plain, record = await gateway.store.create_key(body.tenant, body.name, body.role)
    return {**record.public(), "key": plain}


@router.get("/keys")
async def list_keys(request: Request, tenant: str | None = None) -> dict:
    gateway = await _admin(request)
    return {"object": "list", "data": [r.public() for r in await gateway.store.list_keys(tenant)]}


@router.delete("/keys/{key_id}")
async def revoke_key(request: Request, key_id: str) -> dict:
    gateway = await _admin(request)
    return (await gateway.store.revoke_key(key_id)).public()
