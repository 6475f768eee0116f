"""Route: where a call goes. A named model goes to its route; ``model="auto"``, ``router:<t>`` and
``cascade`` ask the learned router (the ``router`` package) whether the cheap model will do.

``auto`` uses the tenant's threshold (a per-tenant override, else the global one); both live in
Redis and every worker refreshes its copy twice a second, so a change reaches every replica within
a second and the request path never waits on Redis for it. The decision rule sits beside the score,
as in RouteLLM: scores at or above the threshold go to the flagship. A cascade starts with the cheap
model and carries its escalation: the flagship's route, the escalation threshold and the hold-back.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError

from router.confidence import DEFAULT_SCORER
from router.model import RouterModel
from router.model import load as load_router
from wire.texts import prompt_text

from ..config import RouterConfig
from ..errors import APIError
from ..logs import Warnings
from ..store.redis import as_text
from ..upstream.pool import Route, UpstreamPool

log = logging.getLogger("tollgate.router")
throttled = Warnings(log)
THRESHOLDS_KEY = "tg:router:thresholds"
REFRESH_S = 0.5
ROUTED_NAMES = ("auto", "cascade")


@dataclass(frozen=True, slots=True)
class Decision:
    score: float
    threshold: float
    model: str


def decide(score: float, threshold: float, cheap: str, flagship: str) -> Decision:
    return Decision(score, threshold, flagship if score >= threshold else cheap)


@dataclass(frozen=True, slots=True)
class Escalation:
    """A cascade's way on: the flagship, when the cheap answer's confidence is below the threshold."""

    route: Route
    threshold: float
    holdback_tokens: int  # streams: tokens held back to judge before anything is sent
    first_byte_timeout_s: float = 2.0  # a cheap engine silent this long is skipped for the flagship
    scorer: str = DEFAULT_SCORER  # how logprobs become a confidence (router.confidence.SCORERS)


@dataclass(frozen=True, slots=True)
class Routing:
    kind: str  # direct, router or cascade
    route: Route  # where the call goes (a cascade: first)
    decision: Decision | None = None
    escalation: Escalation | None = None


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


def _is_number(value: bytes | str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def is_routed(model: str) -> bool:
    """Whether a model name asks the router (``auto``, ``cascade``, ``router:<t>``) rather than names a model."""
    return model in ROUTED_NAMES or model.startswith("router:")


class Router:
    def __init__(self, pool: UpstreamPool, config: RouterConfig | None, redis: Redis) -> None:
        self.pool = pool
        self.config = config
        self.model: RouterModel | None = load_router(config.artifact) if config else None
        self.redis = redis
        self.thresholds: dict[str, float] = {}

    def route(self, model: str, body: dict, tenant: str, single_answer: bool) -> Routing:
        """Where the call goes; 404 for an unknown model, 400 for a malformed ``router:<t>``."""
        if not is_routed(model):
            return Routing("direct", self.pool.resolve(model))
        if self.config is None or self.model is None:
            raise APIError(404, f"model {model!r} needs a router (the `router` config block)",
                           code="model_not_found", param="model")
        threshold = requested_threshold(model)
        if threshold is None:
            threshold = self.tenant_threshold(tenant)
        try:
            text = prompt_text(body)
        except ValueError:
            text = ""
        decision = decide(self.model.score(text), threshold, self.config.cheap, self.config.flagship)
        if model == "cascade":  # the cascade's own judgement replaces the router's
            decision = Decision(decision.score, decision.threshold, self.config.cheap)
        cascades = decision.model == self.config.cheap and (model == "cascade" or self.config.cascade.enabled)
        if not cascades or not single_answer:  # the cascade judges one answer: n > 1 is routed, not cascaded
            return Routing("router", self.pool.resolve(decision.model), decision)
        cascade = self.config.cascade
        escalation = Escalation(self.pool.resolve(self.config.flagship), self.escalation_threshold,
                                cascade.holdback_tokens, cascade.first_byte_timeout_s, cascade.scorer)
        return Routing("cascade", self.pool.resolve(decision.model), decision, escalation)

    @property
    def escalation_threshold(self) -> float:
        default = self.config.cascade.escalation_threshold if self.config else 0.5
        return self.thresholds.get("escalation", default)

    def tenant_threshold(self, tenant: str) -> float:
        default = self.config.threshold if self.config else 0.5
        return self.thresholds.get(f"tenant:{tenant}", self.thresholds.get("global", default))

    async def refresh_forever(self) -> None:
        while True:
            try:
                raw = await self.redis.hgetall(THRESHOLDS_KEY)
                self.thresholds = {as_text(k): float(v) for k, v in raw.items() if _is_number(v)}
            except (RedisError, OSError) as err:
                throttled.warn(f"router thresholds not refreshed: {err}")  # keep the last known values
            await asyncio.sleep(REFRESH_S)
