"""Checking a request's prompts and an answer's text against a policy (pure, apart from the
optional external classifier in ``external.py``).

``check_text`` finds everything in one text and decides: each category present gets the policy's
action, the strongest action is the verdict, and spans whose action is ``redact`` are replaced
with a typed placeholder (``[EMAIL]``, ``[AWS_KEY]``). ``check_request`` and ``check_answer`` apply
it to every text of a chat or completion body or answer, returning a redacted copy.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from wire.texts import answer_text_places, request_text_places

from . import injection
from .detectors import Finding, merge, scan
from .policy import RANK, Policy

SPANLESS = ("injection", "classifier", "external")
Classifier = Callable[[str], dict[str, float]]  # text -> {label: probability above its threshold}


@dataclass
class Verdict:
    action: str = "allow"
    categories: dict[str, str] = field(default_factory=dict)  # category -> action applied
    kinds: set[str] = field(default_factory=set)  # what was found: email, aws_key, override_instructions, ...

    def add(self, category: str, action: str, kinds: set[str]) -> None:
        if category not in self.categories or RANK[action] > RANK[self.categories[category]]:
            self.categories[category] = action
        self.kinds |= kinds
        if RANK[action] > RANK[self.action]:
            self.action = action

    def merge(self, other: Verdict) -> None:
        for category, action in other.categories.items():
            self.add(category, action, set())
        self.kinds |= other.kinds

    @property
    def blocked(self) -> bool:
        return self.action == "block"

    def summary(self) -> str:
        """For a header: each action taken with its categories, strongest first, e.g.
        ``redact:secret;flag:injection,pii`` (``allow`` when nothing was found to act on). One
        list under the strongest action alone read as if every category had been redacted."""
        by_action: dict[str, list[str]] = {}
        for category, action in sorted(self.categories.items()):
            if action != "allow":
                by_action.setdefault(action, []).append(category)
        if not by_action:
            return "allow"
        ordered = sorted(by_action, key=lambda action: -RANK[action])
        return ";".join(f"{action}:{','.join(by_action[action])}" for action in ordered)


def custom_findings(text: str, policy: Policy) -> list[Finding]:
    found = [Finding("custom", name, m.start(), m.end()) for name, pattern in policy.patterns for m in pattern.finditer(text)]
    if policy.deny is not None:
        found += [Finding("custom", "deny_list", m.start(), m.end()) for m in policy.deny.finditer(text)]
    return found


def check_text(text: str, policy: Policy, direction: str, classifier: Classifier | None = None) -> tuple[Verdict, str]:
    """The verdict on one text, and the text with its redact-spans replaced."""
    verdict = Verdict()
    if not text:
        return verdict, text
    findings = merge([*scan(text), *custom_findings(text, policy)])
    for category in {f.category for f in findings}:
        verdict.add(category, policy.action(direction, category), {f.kind for f in findings if f.category == category})
    if direction == "input":
        scored = injection.score(text)
        if scored.score >= policy.injection_threshold:
            verdict.add("injection", _spanless(policy.action(direction, "injection")), set(scored.signals))
    if classifier is not None:
        labels = classifier(text)
        if labels:
            verdict.add("classifier", _spanless(policy.action(direction, "classifier")), set(labels))
    redacted = redact(text, [f for f in findings if verdict.categories.get(f.category) == "redact"])
    return verdict, redacted


def _spanless(action: str) -> str:
    return "block" if action == "redact" else action


def redact(text: str, findings: list[Finding]) -> str:
    if not findings:
        return text
    parts, position = [], 0
    for finding in sorted(findings, key=lambda f: f.start):
        parts.append(text[position : finding.start])
        parts.append("[REDACTED]" if finding.category == "custom" else f"[{finding.kind.upper()}]")
        position = finding.end
    parts.append(text[position:])
    return "".join(parts)


def check_request(body: dict[str, Any], policy: Policy, classifier: Classifier | None = None) -> tuple[Verdict, dict]:
    """The verdict on every text of a request; a redacted copy of the body when anything was redacted."""
    return _check_places(body, request_text_places, policy, "input", classifier)


def check_answer(answer: dict[str, Any], policy: Policy, classifier: Classifier | None = None) -> tuple[Verdict, dict]:
    return _check_places(answer, answer_text_places, policy, "output", classifier)


def _check_places(document: dict, places_of: Callable, policy: Policy, direction: str,
                  classifier: Classifier | None) -> tuple[Verdict, dict]:
    verdict = Verdict()
    changes = []
    for index, (container, key) in enumerate(places_of(document)):
        text_verdict, redacted = check_text(container[key], policy, direction, classifier)
        verdict.merge(text_verdict)
        if redacted != container[key]:
            changes.append((index, redacted))
    if not changes:
        return verdict, document
    copied = copy.deepcopy(document)
    places = places_of(copied)
    for index, redacted in changes:
        container, key = places[index]
        container[key] = redacted
    return verdict, copied
