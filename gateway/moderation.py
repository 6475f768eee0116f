"""Moderation on the request path: the policy of each tenant, and the checks on the way in and out.

The config's ``moderation`` block is the base policy; a tenant's overrides (stored as JSON in its
Redis hash, set through ``/admin/tenants/{id}/moderation``) are applied on top. Policies are built
once per distinct override and kept, so the request path only looks them up.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson

from moderation import engine, policy
from moderation.classifier import load as load_classifier
from moderation.engine import Verdict
from moderation.external import ExternalClassifier
from moderation.stream import StreamFilter

from . import metrics
from .config import ConfigError, ModerationConfig
from .errors import APIError

log = logging.getLogger("tollgate.moderation")
_POLICY_CACHE_LIMIT = 1024


def base_document(config: ModerationConfig) -> dict[str, Any]:
    return {"input": config.input, "output": config.output, "patterns": [p.model_dump() for p in config.patterns],
            "deny_list": config.deny_list, "injection_threshold": config.injection_threshold}


class GatewayModeration:
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

    async def check_request(self, body: dict, rules: policy.Policy, tenant: str) -> tuple[Verdict, dict]:
        """Check every prompt text; the verdict, and the body to send (redacted if need be)."""
        verdict, checked = engine.check_request(body, rules, self.classifier)
        if self.external is not None and not verdict.blocked:
            await self._external(verdict, [container[key] for container, key in engine.request_texts(checked)], rules, "input")
        _count(tenant, "input", verdict)
        return verdict, checked

    async def check_answer(self, answer: dict, rules: policy.Policy, tenant: str) -> tuple[Verdict, dict]:
        verdict, checked = engine.check_answer(answer, rules, self.classifier)
        if self.external is not None and self.config.external and self.config.external.check_output and not verdict.blocked:
            await self._external(verdict, [container[key] for container, key in engine.answer_texts(checked)], rules, "output")
        _count(tenant, "output", verdict)
        return verdict, checked

    async def _external(self, verdict: Verdict, texts: list[str], rules: policy.Policy, direction: str) -> None:
        assert self.external is not None
        result = await self.external.classify(texts)
        if result.failed:
            metrics.STORE_ERRORS.labels("moderation_external").inc()
        if result.flagged:
            action = rules.action(direction, "external")
            verdict.add("external", "block" if action == "redact" else action, set(result.categories))

    def checks_output(self, rules: policy.Policy, streamed: bool) -> bool:
        """Whether answers need looking at under this policy (most policies: no)."""
        checked = [rules.action("output", "pii"), rules.action("output", "secret")]
        if rules.patterns or rules.deny is not None:
            checked.append(rules.action("output", "custom"))
        if not streamed:
            if self.classifier is not None:
                checked.append(rules.action("output", "classifier"))
            if self.external is not None and self.config.external and self.config.external.check_output:
                checked.append(rules.action("output", "external"))
        return any(action != "allow" for action in checked)

    def stream_filter(self, rules: policy.Policy) -> StreamFilter | None:
        """A window over streamed answers, unless the policy allows everything in answers."""
        return StreamFilter(rules, self.config.stream_window_chars) if self.checks_output(rules, True) else None

    async def close(self) -> None:
        if self.external is not None:
            await self.external.close()


def blocked_error(verdict: Verdict, direction: str) -> APIError:
    categories = sorted(c for c, a in verdict.categories.items() if a == "block")
    where = "request" if direction == "input" else "answer"
    return APIError(400, f"the {where} was blocked by the content policy ({', '.join(categories)})",
                    code="content_policy_violation", extra={"categories": categories})


def _count(tenant: str, direction: str, verdict: Verdict) -> None:
    for category, action in verdict.categories.items():
        metrics.MODERATION.labels(tenant, direction, category, action).inc()


def moderate_chunk(chunk: dict, stream_filter: StreamFilter) -> bool:
    """Run a stream chunk's generated text through the window; True when the stream must stop."""
    for choice in chunk.get("choices") or ():
        delta = choice.get("delta")
        if isinstance(delta, dict) and isinstance(delta.get("content"), str):
            delta["content"] = stream_filter.feed(delta["content"])
        elif isinstance(choice.get("text"), str):
            choice["text"] = stream_filter.feed(choice["text"])
        if choice.get("finish_reason") and not stream_filter.blocked:
            rest = stream_filter.flush()
            if isinstance(delta, dict):
                delta["content"] = (delta.get("content") or "") + rest
            else:
                choice["text"] = (choice.get("text") or "") + rest
    return stream_filter.blocked
