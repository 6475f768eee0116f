"""``tollgate router collect``: labelled prompts through a running gateway, to calibrate the cascade.

Each prompt goes to one model (the cheap model, by name, so that nothing escalates) with token
logprobs on, as a chat or (for base models) a legacy completion; its answer is checked against the prompt's reference answers, and its confidence is
computed as the cascade computes it (``router.confidence``). With a flagship named too, the same
prompt goes there, so quality targets use the flagship's measured correctness rather than an
assumed one. The records feed ``tollgate router calibrate-cascade``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from router.checkers import Checker, is_right
from router.confidence import assess
from wire.texts import choice_logprobs, choice_text, has_tool_calls, prompt_text


class CollectError(Exception):
    pass


@dataclass(frozen=True)
class LabelledPrompt:
    ident: str
    messages: list[dict[str, Any]]
    references: list[str]


@dataclass(frozen=True)
class Asking:
    """How every prompt is asked."""

    url: str
    key: str
    max_tokens: int | None
    temperature: float | None
    scorer: str
    completions: bool = False  # legacy /v1/completions with the prompt as plain text (base models)
    stop: tuple[str, ...] = ()
    timeout_s: float = 300.0


def read_prompts(path: Path) -> list[LabelledPrompt]:
    """JSON Lines: ``prompt`` or ``messages``, and ``answer`` (a string) or ``answers`` (a list)."""
    prompts = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as err:
        raise CollectError(f"cannot read {path}: {err}") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise ValueError("each line must be a JSON object")
            messages = record.get("messages") or [{"role": "user", "content": record.get("prompt")}]
            prompt_text({"messages": messages})  # raises ValueError without a usable prompt
            references = record.get("answers", [record.get("answer")])
            if not isinstance(references, list) or not references or not all(isinstance(r, str | int | float) for r in references):
                raise ValueError('needs "answer" (a string) or "answers" (a list of strings)')
        except (json.JSONDecodeError, ValueError) as err:
            raise CollectError(f"{path}:{number}: {err}") from None
        prompts.append(LabelledPrompt(str(record.get("id", number)), messages, [str(r) for r in references]))
    if not prompts:
        raise CollectError(f"{path}: no prompts")
    return prompts


def _ask(client: httpx.Client, asking: Asking, model: str, messages: list[dict[str, Any]]) -> tuple[dict[str, Any], float | None]:
    body: dict[str, Any] = {"model": model}
    if asking.completions:
        body |= {"prompt": prompt_text({"messages": messages}), "logprobs": 1}
    else:
        body |= {"messages": messages, "logprobs": True}
    if asking.max_tokens is not None:
        body["max_tokens"] = asking.max_tokens
    if asking.temperature is not None:
        body["temperature"] = asking.temperature
    if asking.stop:
        body["stop"] = list(asking.stop)
    endpoint = "/v1/completions" if asking.completions else "/v1/chat/completions"
    response = client.post(asking.url.rstrip("/") + endpoint, json=body,
                           headers={"authorization": f"Bearer {asking.key}"}, timeout=asking.timeout_s)
    if response.status_code != 200:
        try:
            message = response.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = response.text[:300]
        raise CollectError(f"{model}: HTTP {response.status_code}: {message}")
    cost = response.headers.get("x-tollgate-cost-usd")
    return response.json(), float(cost) if cost else None


def _record(client: httpx.Client, asking: Asking, check: Checker, model: str, flagship: str | None,
            prompt: LabelledPrompt) -> dict[str, Any]:
    answer, cost = _ask(client, asking, model, prompt.messages)
    choice = answer["choices"][0]
    text = choice_text(choice)
    logprobs = choice_logprobs(choice)
    judged = assess(text, logprobs, choice.get("finish_reason"), has_tool_calls(choice), asking.max_tokens is not None,
                    asking.scorer)
    record: dict[str, Any] = {
        "id": prompt.ident, "prompt": prompt_text({"messages": prompt.messages}), "references": prompt.references,
        "model": model, "response": text, "finish_reason": choice.get("finish_reason"),
        "confidence": judged.score, "confidence_reason": judged.reason, "correct": is_right(check, text, prompt.references),
        "logprobs": [round(value, 5) for value in logprobs],  # to compare scorers offline
        "cheap_cost_usd": cost, "completion_tokens": (answer.get("usage") or {}).get("completion_tokens"),
    }
    if flagship is not None:
        strong, strong_cost = _ask(client, asking, flagship, prompt.messages)
        strong_text = choice_text(strong["choices"][0])
        record |= {"flagship": flagship, "flagship_response": strong_text,
                   "flagship_correct": is_right(check, strong_text, prompt.references), "flagship_cost_usd": strong_cost}
    return record


def collect(prompts: list[LabelledPrompt], asking: Asking, check: Checker, model: str, flagship: str | None,
            concurrency: int, progress: Callable[[int], None] = lambda done: None) -> Iterator[dict[str, Any]]:
    """One record per prompt, in the file's order."""
    with httpx.Client() as client, ThreadPoolExecutor(max_workers=concurrency) as pool:
        futures = [pool.submit(_record, client, asking, check, model, flagship, p) for p in prompts]
        for done, future in enumerate(futures, start=1):
            try:
                yield future.result()
            except httpx.HTTPError as err:
                raise CollectError(f"cannot reach {asking.url}: {err}") from None
            progress(done)
