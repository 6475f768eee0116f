"""Which router serves, which one shadows it, and what to roll back to: router artifacts deployed
live, shared by every replica through Redis.

* ``tg:router:artifacts`` (hash): version -> the artifact's JSON. A version is the first 16 hex
  digits of the SHA-256 of the document, so the same file always has the same version.
* ``tg:router:slots`` (hash), per scope (``global`` or ``tenant:<id>``): ``<scope>`` -> the serving
  version, ``<scope>:shadow`` -> the candidate scored beside it, ``<scope>:shadow_since`` -> when
  it was deployed, ``<scope>:history`` -> earlier serving versions (JSON list, newest first;
  ``""`` stands for "none": the configured artifact for ``global``, the global router for a tenant).

Every change is one Lua script on the one slots key (atomic, and fine on a Cluster). Every worker
reads the slots with the thresholds twice a second and loads a version it has not seen (off the
event loop), so a deployment, promotion or rollback reaches every replica within a second and the
request path never waits on Redis for it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis

from router.model import RouterModel, parse

from ..store.redis import as_text

ARTIFACTS_KEY = "tg:router:artifacts"
SLOTS_KEY = "tg:router:slots"
GLOBAL = "global"
HISTORY_KEPT = 20
NONE = ""  # in history: no deployed router (the configured one, or the global one for a tenant)


class DeploymentError(ValueError):
    """An operation that cannot apply (nothing to promote or roll back to)."""


def scope_of(tenant: str | None) -> str:
    return f"tenant:{tenant}" if tenant else GLOBAL


def version_of(document: dict[str, Any]) -> str:
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(canonical).hexdigest()[:16]


@dataclass(frozen=True)
class Deployed:
    """A router in force, with the version the ledger and the headers name it by."""

    version: str
    model: RouterModel


@dataclass(frozen=True)
class Deployments:
    """What every worker routes with: the global router and its shadow, and tenants' own ones."""

    serving: Deployed | None = None
    shadow: Deployed | None = None
    tenants: dict[str, Deployed] = field(default_factory=dict)
    tenant_shadows: dict[str, Deployed] = field(default_factory=dict)

    def serving_for(self, tenant: str) -> Deployed | None:
        return self.tenants.get(tenant) or self.serving

    def shadow_for(self, tenant: str) -> Deployed | None:
        return self.tenant_shadows.get(tenant) or self.shadow


def wanted_versions(slots: dict[str, str]) -> dict[str, str]:
    """field -> version of the slots that name a router in force (serving or shadow)."""
    return {name: version for name, version in slots.items()
            if version and not name.endswith((":history", ":shadow_since"))}


def assemble(slots: dict[str, str], models: dict[str, RouterModel], configured: Deployed | None) -> Deployments:
    """The deployments a slots hash describes, from models already loaded (a version that failed to
    load is left out: the scope falls back as if it had none)."""
    def deployed(name: str) -> Deployed | None:
        version = slots.get(name)
        return Deployed(version, models[version]) if version and version in models else None

    tenants: dict[str, Deployed] = {}
    shadows: dict[str, Deployed] = {}
    for name in slots:
        if not name.startswith("tenant:") or name.endswith((":history", ":shadow_since")):
            continue
        tenant = name.removeprefix("tenant:").removesuffix(":shadow")
        found = deployed(name)
        if found is not None:
            (shadows if name.endswith(":shadow") else tenants)[tenant] = found
    return Deployments(deployed(GLOBAL) or configured, deployed(f"{GLOBAL}:shadow"), tenants, shadows)


# KEYS[1] slots; ARGV: operation, scope, version, now, history kept
_CHANGE = """
local op, scope, version = ARGV[1], ARGV[2], ARGV[3]
local history = cjson.decode(redis.call('HGET', KEYS[1], scope .. ':history') or '[]')
local serving = redis.call('HGET', KEYS[1], scope) or ''
local function set_serving(v)
  if v == '' then redis.call('HDEL', KEYS[1], scope) else redis.call('HSET', KEYS[1], scope, v) end
end
local function push_current()
  table.insert(history, 1, serving)
  while #history > tonumber(ARGV[5]) do table.remove(history) end
end
if op == 'shadow' then
  redis.call('HSET', KEYS[1], scope .. ':shadow', version, scope .. ':shadow_since', ARGV[4])
  return 'ok'
elseif op == 'discard' then
  if redis.call('HDEL', KEYS[1], scope .. ':shadow', scope .. ':shadow_since') == 0 then return 'no_shadow' end
  return 'ok'
elseif op == 'serve' then
  if serving == version then return 'ok' end
  push_current()
  set_serving(version)
elseif op == 'promote' then
  local candidate = redis.call('HGET', KEYS[1], scope .. ':shadow')
  if not candidate then return 'no_shadow' end
  push_current()
  set_serving(candidate)
  redis.call('HDEL', KEYS[1], scope .. ':shadow', scope .. ':shadow_since')
elseif op == 'rollback' then
  if #history == 0 then return 'no_history' end
  set_serving(table.remove(history, 1))
end
redis.call('HSET', KEYS[1], scope .. ':history', cjson.encode(history))
return 'ok'
"""

_REFUSALS = {
    "no_shadow": "no candidate router is shadowing here: deploy one with `router deploy --shadow`",
    "no_history": "nothing to roll back to: no earlier router was serving here",
}


async def store_artifact(redis: Redis, document: dict[str, Any]) -> str:
    """Validate an artifact (as the workers will read it) and store it; its version."""
    parse(document, "the artifact")
    version = version_of(document)
    await redis.hset(ARTIFACTS_KEY, version, json.dumps(document, separators=(",", ":")))
    return version


async def change(redis: Redis, operation: str, tenant: str | None, version: str = "", now: float = 0.0) -> None:
    """``serve`` or ``shadow`` a stored version, ``promote`` the shadow, ``rollback``, ``discard`` the shadow."""
    result = as_text(await redis.eval(_CHANGE, 1, SLOTS_KEY, operation, scope_of(tenant), version, str(now),
                                      str(HISTORY_KEPT)))
    if result != "ok":
        raise DeploymentError(_REFUSALS[result])


async def read_slots(redis: Redis) -> dict[str, str]:
    return {as_text(k): as_text(v) for k, v in (await redis.hgetall(SLOTS_KEY)).items()}


async def read_artifacts(redis: Redis, versions: list[str]) -> dict[str, bytes | str]:
    if not versions:
        return {}
    values = await redis.hmget(ARTIFACTS_KEY, versions)
    return {version: value for version, value in zip(versions, values, strict=True) if value is not None}


def describe(model: RouterModel) -> dict[str, Any]:
    """What an operator wants to know of a version: when and on what it was trained, how it scored."""
    meta = model.metadata
    return {key: meta[key] for key in ("trained_at", "examples", "strong_win_rate", "cross_validated", "source")
            if key in meta}
