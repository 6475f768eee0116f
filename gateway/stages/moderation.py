"""Moderate: the tenant's policy, checks on the prompts, and (where the policy asks) on the answer.

The config's ``moderation`` block is the base policy; a tenant's overrides (stored as JSON in its
Redis hash, set through ``/admin/tenants/{id}/moderation``) are applied on top. Policies are built
once per distinct override and kept, so the request path only looks them up. The checks
themselves are the ``moderation`` package's.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import orjson

from moderation import engine, policy
from moderation.classifier import load as load_classifier
from moderation.engine import Verdict
from moderation.external import ExternalClassifier
from moderation.stream import StreamFilter
from wire.texts import answer_text_places, request_text_places

from .. import metrics
from ..config import ConfigError, ModerationConfig
from ..errors import APIError

log = logging.getLogger("tollgate.moderation")
_POLICY_CACHE_LIMIT = 1024


@dataclass(frozen=True, slots=True)
class Screening:
    """What the input checks found, the body to send (redacted where the policy says), and the
    policy the answer is checked against."""

    verdict: Verdict
    body: dict[str, Any]
    rules: policy.Policy
    checks_answer: bool  # whole answers: run the output checks (most policies: no)
    watches_stream: bool  # streamed answers: run them through a moderation window


def base_document(config: ModerationConfig) -> dict[str, Any]:
    return {"input": config.input, "output": config.output, "patterns": [p.model_dump() for p in config.patterns],
            "deny_list": config.deny_list, "injection_threshold": config.injection_threshold}


class Moderation:
    def __init__(self, config: ModerationConfig) -> None:
        self.config = config
        try:
            self.base = policy.build(base_document(config))
            self.classifier = (load_classifier(config.classifier.artifact, config.classifier.threshold)
                               if config.classifier else None)
        except (policy.PolicyError, OSError, ValueError) as err:
            raise ConfigError(f"moderation: {err}") from None
        external = config.external
        self.external = (ExternalClassifier(external.url, external.model, external.api_key, external.timeout_s,
                                            external.on_error == "closed") if external else None)
        self._policies: dict[str, policy.Policy] = {}

    def policy_for(self, overrides: str | None) -> policy.Policy:
        """The tenant's policy: the base, with its stored overrides (JSON) applied."""
        if not overrides:
            return self.base
        cached = self._policies.get(overrides)
        if cached is None:
            try:
                cached = policy.build(orjson.loads(overrides), self.base)
            except (policy.PolicyError, orjson.JSONDecodeError, AttributeError, TypeError) as err:
                log.error("ignoring a tenant's unusable moderation overrides: %s", err)
                cached = self.base
            if len(self._policies) >= _POLICY_CACHE_LIMIT:
                self._policies.clear()
            self._policies[overrides] = cached
        return cached

    async def screen(self, body: dict[str, Any], overrides: str | None, tenant: str) -> Screening:
        """Check every prompt text; raises 400 ``content_policy_violation`` when the policy blocks."""
        rules = self.policy_for(overrides)
        verdict, checked = engine.check_request(body, rules, self.classifier)
        if self.external is not None and not verdict.blocked:
            texts = [container[key] for container, key in request_text_places(checked)]
            await self._external(verdict, texts, rules, "input")
        _count(tenant, "input", verdict)
        if verdict.blocked:
            raise Blocked(verdict, "input")
        return Screening(verdict, checked, rules, self._checks_output(rules, False), self._checks_output(rules, True))

    async def check_answer(self, answer: dict[str, Any], screening: Screening, tenant: str) -> tuple[dict[str, Any], Verdict]:
        """The answer as it may be sent (redacted where the policy says) and what was found;
        raises 400 ``content_policy_violation`` when the policy blocks the answer."""
        verdict, checked = engine.check_answer(answer, screening.rules, self.classifier)
        external = self.config.external
        if self.external is not None and external is not None and external.check_output and not verdict.blocked:
            texts = [container[key] for container, key in answer_text_places(checked)]
            await self._external(verdict, texts, screening.rules, "output")
        _count(tenant, "output", verdict)
        if verdict.blocked:
            raise Blocked(verdict, "output")
        return checked, verdict

    def window(self, screening: Screening) -> StreamFilter:
        return StreamFilter(screening.rules, self.config.stream_window_chars)

    async def _external(self, verdict: Verdict, texts: list[str], rules: policy.Policy, direction: str) -> None:
        assert self.external is not None
        result = await self.external.classify(texts)
        if result.failed:
            metrics.STORE_ERRORS.labels("moderation_external").inc()
        if result.flagged:
            action = rules.action(direction, "external")
            verdict.add("external", "block" if action == "redact" else action, set(result.categories))

    def _checks_output(self, rules: policy.Policy, streamed: bool) -> bool:
        """Whether answers need looking at under this policy."""
        checked = [rules.action("output", "pii"), rules.action("output", "secret")]
        if rules.patterns or rules.deny is not None:
            checked.append(rules.action("output", "custom"))
        if not streamed:
            if self.classifier is not None:
                checked.append(rules.action("output", "classifier"))
            if self.external is not None and self.config.external and self.config.external.check_output:
                checked.append(rules.action("output", "external"))
        return any(action != "allow" for action in checked)

    async def close(self) -> None:
        if self.external is not None:
            await self.external.close()


class Blocked(APIError):
    """The policy refused a prompt or an answer; ``verdict`` says what was found (for the record)."""

    def __init__(self, verdict: Verdict, direction: str) -> None:
        categories = sorted(c for c, a in verdict.categories.items() if a == "block")
        where = "request" if direction == "input" else "answer"
        super().__init__(400, f"the {where} was blocked by the content policy ({', '.join(categories)})",
                         code="content_policy_violation", extra={"categories": categories})
        self.verdict = verdict


def _count(tenant: str, direction: str, verdict: Verdict) -> None:
    for category, action in verdict.categories.items():
        metrics.MODERATION.labels(tenant, direction, category, action).inc()
