"""Prompt-injection and jailbreak signals, scored rather than matched by one regular expression.

Each signal is a phrase family seen in injection attempts (overriding earlier instructions,
persona jailbreaks, requests for the hidden prompt, chat-template markers smuggled into content,
invisible characters) with a weight; the score combines the signals present as independent
evidence, ``1 - prod(1 - w)``. One weak signal ("without restrictions") stays below the default
threshold of 0.5; two, or one strong one, reach it. Each signal is gated by a plain substring so
that ordinary prompts pay for a few ``in`` tests.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_B64_BLOB = re.compile(r"[A-Za-z0-9+/]{200,}={0,2}")
_ZERO_WIDTH = ("\u200b", "\u200c", "\u200d", "\u2060", "\ufeff")


@dataclass(frozen=True)
class Signal:
    name: str
    gate: tuple[str, ...]  # any of these substrings (lower case) must be present
    pattern: re.Pattern[str]
    weight: float


SIGNALS = (
    Signal("override_instructions", ("ignore", "disregard", "forget", "override"), re.compile(
        r"\b(?:ignore|disregard|forget|override)\s+(?:all\s+|any\s+|the\s+|your\s+|my\s+)?(?:previous|prior|above|earlier|preceding|original|system)?\s*"
        r"(?:instructions|prompts?|rules|guidelines|directions|messages|context)\b"), 0.7),
    Signal("persona_jailbreak", ("dan", "jailbr", "developer mode", "god mode", "unrestricted", "unfiltered", "uncensored",
                                 "do anything now"), re.compile(
        r"\b(?:you are now|you are|act as|you're now|become)\s+(?:dan\b|an? (?:unrestricted|jailbroken|unfiltered|uncensored)|in developer mode)"
        r"|\bdo anything now\b"
        r"|\b(?:developer|god|jailbreak|dan)\s+mode\b|\bjailbr(?:eak|oken)\b"), 0.6),
    Signal("prompt_extraction", ("prompt", "instructions"), re.compile(
        r"\b(?:reveal|print|show|repeat|output|tell me|give me|leak)\s+(?:me\s+)?(?:your|the)\s+(?:full\s+|hidden\s+|initial\s+|original\s+|secret\s+)?"
        r"(?:system\s+prompt|prompt|instructions)\b"), 0.5),
    Signal("no_limits", ("restriction", "filter", "limitation", "censor", "guardrail", "safety"), re.compile(
        r"\b(?:without|no|ignore|bypass|disable)\s+(?:any\s+|all\s+|your\s+)?(?:restrictions|filters|limitations|censorship|guardrails|safety)\b"), 0.35),
    Signal("role_hijack", ("pretend", "roleplay", "role-play", "act as"), re.compile(
        r"\b(?:pretend|roleplay|role-play|act)\s+(?:you are|to be|as)\s+(?:an?\s+)?(?:evil|unfiltered|uncensored|malicious|rogue)\b"), 0.45),
    Signal("template_markers", ("<|", "[inst]", "[/inst]", "<system", "</system", "### system", "### instruction"), re.compile(
        r"<\|(?:im_start|im_end|system|user|assistant|eot_id|start_header_id)\|?>|\[/?inst\]|</?system>|###\s*(?:system|instruction)"), 0.45),
    Signal("new_instructions", ("new instruction", "updated instruction", "from now on"), re.compile(
        r"\b(?:new|updated)\s+instructions?\s*:|\bfrom now on,?\s+you\s+(?:will|must|are)\b"), 0.4),
)


@dataclass(frozen=True)
class InjectionScore:
    score: float
    signals: tuple[str, ...]


def score(text: str) -> InjectionScore:
    lower = text.lower()
    found: list[tuple[str, float]] = []
    for signal in SIGNALS:
        if any(g in lower for g in signal.gate) and signal.pattern.search(lower):
            found.append((signal.name, signal.weight))
    if sum(text.count(z) for z in _ZERO_WIDTH) >= 3:
        found.append(("invisible_characters", 0.3))
    if "decode" in lower and _B64_BLOB.search(text):
        found.append(("encoded_payload", 0.35))
    remaining = 1.0
    for _, weight in found:
        remaining *= 1.0 - weight
    return InjectionScore(round(1.0 - remaining, 4), tuple(name for name, _ in found))
