"""What to do about each category, on the way in and on the way out: allow, flag, redact, block.

Categories: ``pii`` and ``secret`` (detectors.py), ``injection`` (injection.py), ``custom`` (a
tenant's own patterns and deny list), ``classifier`` (a model the operator trained) and
``external`` (an OpenAI-style moderation endpoint). ``redact`` needs spans to replace, so for
categories without spans (injection, classifier, external) it acts as ``block``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

ACTIONS = ("allow", "flag", "redact", "block")
CATEGORIES = ("pii", "secret", "injection", "custom", "classifier", "external")
RANK = {action: rank for rank, action in enumerate(ACTIONS)}
DEFAULT_INPUT = {"pii": "flag", "secret": "redact", "injection": "flag", "custom": "block", "classifier": "flag",
                 "external": "block"}
# Answers are not checked by default: a streamed answer's check holds back a window of text,
# which delays the first visible token. Operators turn output checks on per category.
DEFAULT_OUTPUT = {"pii": "allow", "secret": "allow", "injection": "allow", "custom": "block", "classifier": "allow",
                  "external": "allow"}
MAX_PATTERN_CHARS = 500
# A group that holds a quantifier and is itself quantified, "(a+)+" or "(x*y)*": the shape of
# catastrophic backtracking. Tenant patterns containing it are refused.
_NESTED_QUANTIFIER = re.compile(r"\((?:[^()\\]|\\.)*[*+}?]\)\s*[*+{]")


class PolicyError(ValueError):
    """A policy or pattern the gateway will not run; the message says which and why."""


def compile_pattern(pattern: str) -> re.Pattern[str]:
    if len(pattern) > MAX_PATTERN_CHARS:
        raise PolicyError(f"pattern longer than {MAX_PATTERN_CHARS} characters")
    if _NESTED_QUANTIFIER.search(pattern):
        raise PolicyError(f"pattern {pattern[:60]!r} nests quantifiers, which can backtrack catastrophically")
    try:
        return re.compile(pattern, re.I)
    except re.error as err:
        raise PolicyError(f"pattern {pattern[:60]!r} is not a valid regular expression: {err}") from None


@dataclass(frozen=True)
class Policy:
    input: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_INPUT))
    output: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_OUTPUT))
    patterns: tuple[tuple[str, re.Pattern[str]], ...] = ()  # (name, compiled) custom patterns
    deny_words: tuple[str, ...] = ()
    deny: re.Pattern[str] | None = None  # the deny list as one case-insensitive alternation
    injection_threshold: float = 0.5

    def action(self, direction: str, category: str) -> str:
        table = self.input if direction == "input" else self.output
        return table.get(category, "allow")


def build(document: Mapping[str, Any], base: Policy | None = None) -> Policy:
    """A policy from plain data (config or a tenant's override), on top of ``base``."""
    base = base or Policy()
    tables = {}
    for direction in ("input", "output"):
        table = dict(getattr(base, direction))
        for category, action in (document.get(direction) or {}).items():
            if category not in CATEGORIES:
                raise PolicyError(f"{direction}.{category}: unknown category (one of {', '.join(CATEGORIES)})")
            if action not in ACTIONS:
                raise PolicyError(f"{direction}.{category}: action must be one of {', '.join(ACTIONS)}")
            table[category] = action
        tables[direction] = table
    patterns = base.patterns + tuple((str(p.get("name") or "custom"), compile_pattern(str(p.get("pattern", ""))))
                                     for p in document.get("patterns") or ())
    words = tuple(sorted({*base.deny_words, *(str(w).strip() for w in document.get("deny_list") or () if str(w).strip())},
                         key=len, reverse=True))
    deny = re.compile(rf"(?<!\w)(?:{'|'.join(re.escape(w) for w in words)})(?!\w)", re.I) if words else None
    threshold = float(document.get("injection_threshold", base.injection_threshold))
    if not 0 < threshold <= 1:
        raise PolicyError("injection_threshold must be in (0, 1]")
    return Policy(tables["input"], tables["output"], patterns, words, deny, threshold)
