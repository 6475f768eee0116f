"""The router on the request path: ``model="auto"``, ``model="router:<threshold>"`` and ``cascade``.

``auto`` uses the tenant's threshold (a per-tenant override, else the global one); both live in
Redis and every worker refreshes its copy twice a second, so a change reaches every replica
within a second and the request path never waits on Redis for it. The decision is a pure
function of the score and the threshold: scores at or above it go to the flagship.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError

from router.data import prompt_text
from router.model import RouterModel
from router.model import load as load_router

from .config import RouterConfig
from .errors import APIError

log = logging.getLogger("tollgate.routing")
THRESHOLDS_KEY = "tg:router:thresholds"
REFRESH_S = 0.5


@dataclass(frozen=True)
class Decision:
    score: float
    threshold: float
    model: str


def decide(score: float, threshold: float, cheap: str, flagship: str) -> Decision:
    return Decision(score, threshold, flagship if score >= threshold else cheap)


def requested_threshold(model: str) -> float | None:
    """The threshold of ``router:<t>``; None for other model names."""
    if not model.startswith("router:"):
        return None
    try:
        value = float(model[len("router:"):])
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise APIError(400, "model 'router:<threshold>' needs a threshold between 0 and 1", code="invalid_value", param="model")
    return value


def _is_number(value: bytes) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


class Router:
    def __init__(self, config: RouterConfig, redis: Redis) -> None:
        self.config = config
        self.model: RouterModel = load_router(config.artifact)
        self.redis = redis
        self.thresholds: dict[str, float] = {}

    def wants(self, model: str) -> bool:
        return model in ("auto", "cascade") or model.startswith("router:")

    def cascades(self, model: str, decision: Decision) -> bool:
        """``cascade`` always starts cheap; ``auto`` and ``router:<t>`` when the cascade is enabled."""
        return decision.model == self.config.cheap and (model == "cascade" or self.config.cascade.enabled)

    @property
    def escalation_threshold(self) -> float:
        return self.thresholds.get("escalation", self.config.cascade.escalation_threshold)

    def tenant_threshold(self, tenant: str) -> float:
        return self.thresholds.get(f"tenant:{tenant}", self.thresholds.get("global", self.config.threshold))

    def route(self, model: str, body: dict, tenant: str) -> Decision:
        threshold = requested_threshold(model)
        if threshold is None:
            threshold = self.tenant_threshold(tenant)
        try:
            text = prompt_text(body)
        except ValueError:
            text = ""
        decision = decide(self.model.score(text), threshold, self.config.cheap, self.config.flagship)
        if model == "cascade":  # the cascade's own judgement replaces the router's
            return Decision(decision.score, decision.threshold, self.config.cheap)
        return decision

    async def refresh_forever(self) -> None:
        while True:
            try:
                raw = await self.redis.hgetall(THRESHOLDS_KEY)
                self.thresholds = {k.decode(): float(v) for k, v in raw.items() if _is_number(v)}
            except (RedisError, OSError) as err:
                log.warning("router thresholds not refreshed: %s", err)  # keep the last known values
            await asyncio.sleep(REFRESH_S)
