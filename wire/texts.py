"""Where the text is in OpenAI bodies: request messages and prompts, answers and stream chunks.

Every package that reads text out of a body (moderation, the router, the caches, token counts,
the simulator) reads it through these functions, so a new content shape is taught in one place.
"""

from __future__ import annotations

from typing import Any

USER_ROLES = ("system", "developer", "user")


def content_text(content: Any) -> str:
    """Text of a message's content: a string, or the text parts of a content-part list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and isinstance(p.get("text", ""), str))
    return ""


def prompt_text(body: dict[str, Any]) -> str:
    """What the client asks: ``prompt``, or the system, developer and user turns of ``messages``.

    Raises ValueError when the body has neither (router data files are checked with it)."""
    prompt = body.get("prompt")
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, list) and all(isinstance(p, str) for p in prompt):
        return "\n".join(prompt)
    messages = body.get("messages")
    if isinstance(messages, list):
        return "\n".join(content_text(m.get("content")) for m in messages
                         if isinstance(m, dict) and m.get("role") in USER_ROLES)
    raise ValueError('needs "prompt" (a string) or "messages" (a list)')


TextPlace = tuple[Any, Any]  # (container, key): container[key] is a text


def request_text_places(body: dict[str, Any]) -> list[TextPlace]:
    """Every text a request sends, as (container, key): message contents, text parts, prompts."""
    places: list[TextPlace] = []
    for message in body.get("messages") or ():
        if not isinstance(message, dict):
            continue
        content = message.get("content")
        if isinstance(content, str):
            places.append((message, "content"))
        elif isinstance(content, list):
            places += [(part, "text") for part in content if isinstance(part, dict) and isinstance(part.get("text"), str)]
    prompt = body.get("prompt")
    if isinstance(prompt, str):
        places.append((body, "prompt"))
    elif isinstance(prompt, list):
        places += [(prompt, i) for i, p in enumerate(prompt) if isinstance(p, str)]
    return places


def answer_text_places(answer: dict[str, Any]) -> list[TextPlace]:
    """Every generated text of a whole answer, as (container, key)."""
    places: list[TextPlace] = []
    for choice in answer.get("choices") or ():
        if not isinstance(choice, dict):
            continue
        message = choice.get("message")
        if isinstance(message, dict) and isinstance(message.get("content"), str):
            places.append((message, "content"))
        elif isinstance(choice.get("text"), str):
            places.append((choice, "text"))
    return places


def choice_text(choice: dict[str, Any]) -> str:
    """The generated text of one choice: a whole answer's message, a chunk's delta, or ``text``."""
    if "text" in choice:
        return str(choice.get("text") or "")
    message = choice.get("message") or choice.get("delta") or {}
    content = message.get("content") if isinstance(message, dict) else None
    return content if isinstance(content, str) else ""


def has_tool_calls(choice: dict[str, Any]) -> bool:
    message = choice.get("message") or choice.get("delta") or {}
    return isinstance(message, dict) and bool(message.get("tool_calls"))


def choice_logprobs(choice: dict[str, Any]) -> list[float]:
    """Token logprobs of a chat or legacy-completion choice (whole answer or stream chunk)."""
    logprobs = choice.get("logprobs") or {}
    if not isinstance(logprobs, dict):
        return []
    if isinstance(logprobs.get("content"), list):  # chat
        return [float(t["logprob"]) for t in logprobs["content"]
                if isinstance(t, dict) and isinstance(t.get("logprob"), (int, float))]
    values = logprobs.get("token_logprobs")  # legacy completions
    return [float(v) for v in values if isinstance(v, (int, float))] if isinstance(values, list) else []


def answer_text(answer: dict[str, Any]) -> str:
    """All generated text of a whole answer, every choice."""
    return "".join(choice_text(c) for c in answer.get("choices") or () if isinstance(c, dict))


def chunk_has_token(chunk: dict[str, Any]) -> bool:
    """Engines stream one token per chunk: a chunk with generated text or tool arguments carries one."""
    for choice in chunk.get("choices") or ():
        if not isinstance(choice, dict):
            continue
        if choice.get("text"):
            return True
        delta = choice.get("delta")
        if isinstance(delta, dict) and (delta.get("content") or delta.get("tool_calls") or delta.get("reasoning_content")):
            return True
    return False


def chunk_finishes(chunk: dict[str, Any]) -> bool:
    return any(isinstance(c, dict) and c.get("finish_reason") for c in chunk.get("choices") or ())
