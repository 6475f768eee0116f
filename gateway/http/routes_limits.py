"""The admin API for rate limits and budgets: per-tenant and per-key overrides of the defaults.

A change is read by every replica within the auth cache's lifetime (half a second by default),
because limits travel with the key lookup. ``-1`` lifts a limit; ``null`` removes an override.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from ..stages.accounting.limits import LIMIT_NAMES, LimitSet, prefixed, resolve
from . import docs
from .routes_admin import admin_gateway

router = APIRouter(prefix="/admin", tags=["admin"], responses=docs.ADMIN)


class LimitOverrides(BaseModel):
    """Requests and tokens per minute, USD per UTC day and month. Fields left out stay as they are."""

    model_config = ConfigDict(extra="forbid")
    rpm: int | None = Field(None, ge=-1)
    tpm: int | None = Field(None, ge=-1)
    daily_usd: float | None = Field(None, ge=-1)
    monthly_usd: float | None = Field(None, ge=-1)

    def changes(self) -> dict[str, float | None]:
        return {name: getattr(self, name) for name in LIMIT_NAMES if name in self.model_fields_set}


class TenantLimits(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tenant: LimitOverrides | None = None  # the tenant as a whole
    key: LimitOverrides | None = None  # each of the tenant's keys, unless a key overrides it


def _numbers(overrides: dict[str, str]) -> dict[str, float | int | None]:
    """Stored override strings as JSON numbers (-1, "no limit", shows as null)."""
    out: dict[str, float | int | None] = {}
    for name, raw in overrides.items():
        try:
            value = float(raw)
        except ValueError:
            continue
        out[name] = None if value < 0 else (int(value) if name in ("rpm", "tpm") else value)
    return out


def _as_dict(limits: LimitSet) -> dict[str, float | None]:
    return {name: getattr(limits, name) for name in LIMIT_NAMES}


@router.get("/tenants/{tenant_id}/limits")
async def get_tenant_limits(request: Request, tenant_id: str) -> dict:
    gateway = await admin_gateway(request)
    fields = await gateway.store.existing_tenant_fields(tenant_id)
    accounting = gateway.accounting
    effective = resolve(accounting.default_tenant_limits, accounting.default_key_limits, fields, {})
    return {
        "tenant_id": tenant_id,
        "overrides": {"tenant": _numbers(prefixed(fields, "limit:tenant:")), "key": _numbers(prefixed(fields, "limit:key:"))},
        "effective": {"tenant": _as_dict(effective.tenant), "key": _as_dict(effective.key)},
    }


@router.put("/tenants/{tenant_id}/limits")
async def set_tenant_limits(request: Request, tenant_id: str, body: TenantLimits) -> dict:
    gateway = await admin_gateway(request)
    for scope, overrides in (("tenant", body.tenant), ("key", body.key)):
        if overrides is not None:
            await gateway.store.set_tenant_limits(tenant_id, scope, overrides.changes())
    return await get_tenant_limits(request, tenant_id)


@router.put("/keys/{key_id}/limits")
async def set_key_limits(request: Request, key_id: str, body: LimitOverrides) -> dict:
    gateway = await admin_gateway(request)
    record = await gateway.store.set_key_limits(key_id, body.changes())
    fields = await gateway.store.tenant_fields(record.tenant)
    accounting = gateway.accounting
    effective = resolve(accounting.default_tenant_limits, accounting.default_key_limits, fields, record.limit_fields)
    return {**record.public(), "overrides": _numbers(prefixed(record.limit_fields, "limit:")), "effective": _as_dict(effective.key)}
