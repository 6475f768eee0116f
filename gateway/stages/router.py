"""Route: where a call goes. A named model goes to its route; ``model="auto"``, ``router:<t>`` and
``cascade`` ask the learned router (the ``router`` package) whether the cheap model will do.

``auto`` uses the tenant's threshold (a per-tenant override, else the global one) and the tenant's
router (its own deployed artifact, else the global one: router_deployments.py); both live in Redis
and every worker refreshes its copy twice a second, so a change reaches every replica within a
second and the request path never waits on Redis for it. The decision rule sits beside the score,
as in RouteLLM: scores at or above the threshold go to the flagship. A candidate router deployed as a
shadow scores the same prompt beside it; its decision is recorded, never acted on. A cascade starts
with the cheap model and carries its escalation: the flagship's route, the escalation threshold and
the hold-back.

A request may say what kind of task it is (``metadata: {"tollgate_task": "math"}``, else its key's
``tollgate_task`` metadata): routers trained with task hints use it as a feature. The hint is
taken out of the body before it goes upstream (OpenAI refuses ``metadata`` without ``store``).
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError

from router.confidence import DEFAULT_SCORER
from router.features import prompt_features
from router.model import RouterFileError, RouterModel, parse
from wire.texts import prompt_text

from ..config import RouterConfig
from ..errors import APIError
from ..logs import Warnings
from ..store.redis import as_text
from ..upstream.pool import Route, UpstreamPool
from .router_deployments import (
    Deployed,
    Deployments,
    assemble,
    read_artifacts,
    read_slots,
    version_of,
    wanted_versions,
)

log = logging.getLogger("tollgate.router")
throttled = Warnings(log)
THRESHOLDS_KEY = "tg:router:thresholds"
REFRESH_S = 0.5
ROUTED_NAMES = ("auto", "cascade")
HINT_FIELD = "tollgate_task"


@dataclass(frozen=True, slots=True)
class Decision:
    score: float
    threshold: float
    model: str
    router: str = ""  # the deployed version that scored it


def decide(score: float, threshold: float, cheap: str, flagship: str, router: str = "") -> Decision:
    return Decision(score, threshold, flagship if score >= threshold else cheap, router)


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
    shadow: Decision | None = None  # what the shadow router would have decided (never acted on)


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


def task_hint(body: dict) -> tuple[str | None, dict]:
    """The request's task hint, and the body without it (the rest of ``metadata`` is kept)."""
    metadata = body.get("metadata")
    if not isinstance(metadata, dict) or HINT_FIELD not in metadata:
        return None, body
    hint = metadata[HINT_FIELD]
    rest = {k: v for k, v in metadata.items() if k != HINT_FIELD}
    stripped = {k: v for k, v in body.items() if k != "metadata"}
    if rest:
        stripped["metadata"] = rest
    return (hint[:100] if isinstance(hint, str) and hint.strip() else None), stripped


def load_configured(path: str) -> Deployed:
    """The config's artifact, named by the same kind of version as deployed ones."""
    try:
        with open(path, "rb") as handle:
            document = json.loads(handle.read())
    except (OSError, ValueError) as err:
        raise RouterFileError(f"cannot read router {path}: {err}") from None
    return Deployed(version_of(document), parse(document, path))


def _parse_deployed(document: bytes | str) -> RouterModel:
    return parse(json.loads(document), "deployed router")


def is_routed(model: str) -> bool:
    """Whether a model name asks the router (``auto``, ``cascade``, ``router:<t>``) rather than names a model."""
    return model in ROUTED_NAMES or model.startswith("router:")


class Router:
    def __init__(self, pool: UpstreamPool, config: RouterConfig | None, redis: Redis) -> None:
        self.pool = pool
        self.config = config
        self.configured: Deployed | None = load_configured(config.artifact) if config else None
        self.deployments = Deployments(serving=self.configured)
        self.models: dict[str, RouterModel] = {}  # deployed versions loaded so far
        self.redis = redis
        self.thresholds: dict[str, float] = {}

    def route(self, model: str, body: dict, tenant: str, single_answer: bool, hint: str | None = None) -> Routing:
        """Where the call goes; 404 for an unknown model, 400 for a malformed ``router:<t>``."""
        if not is_routed(model):
            return Routing("direct", self.pool.resolve(model))
        serving = self.deployments.serving_for(tenant)
        if self.config is None or serving is None:
            raise APIError(404, f"model {model!r} needs a router (the `router` config block)",
                           code="model_not_found", param="model")
        threshold = requested_threshold(model)
        if threshold is None:
            threshold = self.tenant_threshold(tenant)
        try:
            text = prompt_text(body)
        except ValueError:
            text = ""
        cheap, flagship = self.config.cheap, self.config.flagship
        features = prompt_features(text, hint, serving.model.features)
        decision = decide(serving.model.score_featurized(features), threshold, cheap, flagship, serving.version)
        candidate = self.deployments.shadow_for(tenant)
        shadow = None
        if candidate is not None and model != "cascade":
            same = candidate.model.features == serving.model.features  # then the features are taken once
            score = (candidate.model.score_featurized(features) if same else candidate.model.score(text, hint))
            shadow = decide(score, threshold, cheap, flagship, candidate.version)
        if model == "cascade":  # the cascade's own judgement replaces the router's
            decision = Decision(decision.score, decision.threshold, cheap, decision.router)
        cascades = decision.model == self.config.cheap and (model == "cascade" or self.config.cascade.enabled)
        if not cascades or not single_answer:  # the cascade judges one answer: n > 1 is routed, not cascaded
            return Routing("router", self.pool.resolve(decision.model), decision, shadow=shadow)
        cascade = self.config.cascade
        escalation = Escalation(self.pool.resolve(self.config.flagship), self.escalation_threshold,
                                cascade.holdback_tokens, cascade.first_byte_timeout_s, cascade.scorer)
        return Routing("cascade", self.pool.resolve(decision.model), decision, escalation, shadow)

    @property
    def escalation_threshold(self) -> float:
        default = self.config.cascade.escalation_threshold if self.config else 0.5
        return self.thresholds.get("escalation", default)

    def tenant_threshold(self, tenant: str) -> float:
        default = self.config.threshold if self.config else 0.5
        return self.thresholds.get(f"tenant:{tenant}", self.thresholds.get("global", default))

    async def refresh(self) -> None:
        """Read the live thresholds and deployments; load (off the event loop) versions not seen yet."""
        raw = await self.redis.hgetall(THRESHOLDS_KEY)
        self.thresholds = {as_text(k): float(v) for k, v in raw.items() if _is_number(v)}
        if self.config is None:
            return
        slots = await read_slots(self.redis)
        wanted = set(wanted_versions(slots).values())
        missing = sorted(wanted - set(self.models))
        for version, document in (await read_artifacts(self.redis, missing)).items():
            try:
                self.models[version] = await asyncio.to_thread(_parse_deployed, document)
            except (RouterFileError, ValueError) as err:
                throttled.warn(f"deployed router {version} not loaded: {err}", key=f"router:{version}")
        self.models = {v: m for v, m in self.models.items() if v in wanted}
        self.deployments = assemble(slots, self.models, self.configured)

    async def refresh_forever(self) -> None:
        while True:
            try:
                await self.refresh()
            except (RedisError, OSError) as err:
                throttled.warn(f"router thresholds and deployments not refreshed: {err}")  # keep the last known
            await asyncio.sleep(REFRESH_S)
