"""Operations endpoints: liveness, readiness and the Prometheus metrics (behind a key)."""

from __future__ import annotations

import asyncio
import hmac

from fastapi import APIRouter, Request
from redis.exceptions import RedisError
from starlette.responses import JSONResponse, Response

from .. import metrics
from ..state import GatewayState
from ..store.keys import bearer_token
from ..upstream.pool import probe_backend

router = APIRouter(tags=["ops"])


@router.get("/healthz")
async def healthz() -> Response:
    """Liveness: the process answers. Readiness (dependencies) is /readyz."""
    return JSONResponse({"status": "ok"})


@router.get("/readyz", responses={503: {"description": "Redis or every backend is unreachable"}})
async def readyz(request: Request) -> Response:
    """Ready when Redis answers and at least one backend answers its health path."""
    gateway: GatewayState = request.app.state.gateway
    redis_ok, *backend_ok = await asyncio.gather(
        _redis_ok(gateway), *(probe_backend(b) for b in gateway.pool.backends.values())
    )
    backends = dict(zip(gateway.pool.backends, backend_ok, strict=True))
    ready = redis_ok and any(backend_ok)
    body = {"status": "ready" if ready else "not_ready", "redis": redis_ok, "backends": backends}
    return JSONResponse(body, status_code=200 if ready else 503)


async def _redis_ok(gateway: GatewayState) -> bool:
    try:
        async with asyncio.timeout(1.0):
            return bool(await gateway.redis.ping())
    except (RedisError, OSError, TimeoutError):
        return False


@router.get("/metrics", responses={401: {"description": "no key"}, 403: {"description": "not a metrics or admin key"}})
async def metrics_endpoint(request: Request) -> Response:
    """Prometheus metrics, summed over workers. They name every tenant's spend, so by default they
    need the metrics key (``server.metrics_key``) or an admin key."""
    gateway: GatewayState = request.app.state.gateway
    server = gateway.settings.server
    if server.metrics_auth == "key":
        authorization = request.headers.get("authorization")
        token = bearer_token(authorization)
        if not (token and server.metrics_key and hmac.compare_digest(token.encode(), server.metrics_key.encode())):
            await gateway.auth.require_admin(authorization)
    body, content_type = metrics.render()
    return Response(body, media_type=content_type)
