"""Checking a streamed answer as it goes: a sliding window over the generated text.

Text is released only once it is ``window`` characters behind the newest token, so a secret or an
e-mail address split over several chunks is seen whole before any of it leaves; a span that
straddles the release point holds the release back to its start. Redacted spans are replaced in
what is released; a blocking finding stops the stream (the caller ends it with
``finish_reason: "content_filter"``, as OpenAI does, and a clean ``[DONE]``).
"""

from __future__ import annotations

from typing import Any

from .detectors import merge, scan
from .engine import Verdict, custom_findings, redact
from .policy import Policy


class StreamFilter:
    def __init__(self, policy: Policy, window: int = 256) -> None:
        self.policy = policy
        self.window = window
        self.verdict = Verdict()
        self._pending = ""

    def feed(self, text: str) -> str:
        """Take generated text; return the text that may be released now ("" while held back)."""
        self._pending += text
        return self._release(final=False)

    def flush(self) -> str:
        """The stream ended: judge and release everything still held back."""
        return self._release(final=True)

    @property
    def blocked(self) -> bool:
        return self.verdict.blocked

    def _release(self, final: bool) -> str:
        pending = self._pending
        findings = merge([*scan(pending), *custom_findings(pending, self.policy)])
        cut = len(pending) if final else max(len(pending) - self.window, 0)
        for finding in findings:
            if finding.start < cut < finding.end:
                cut = finding.start  # never release half of a match
        settled = [f for f in findings if f.end <= cut]
        for category in {f.category for f in settled}:
            self.verdict.add(category, self.policy.action("output", category),
                             {f.kind for f in settled if f.category == category})
        if self.verdict.blocked:
            self._pending = ""
            return ""
        spans = [f for f in settled if self.verdict.categories.get(f.category) == "redact"]
        released = redact(pending[:cut], spans)
        self._pending = pending[cut:]
        return released

    def filter_chunk(self, chunk: dict[str, Any]) -> bool:
        """Run a stream chunk's generated text through the window, in place; True when the
        stream must stop (a blocking finding)."""
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict):
                continue
            delta = choice.get("delta")
            if isinstance(delta, dict) and isinstance(delta.get("content"), str):
                delta["content"] = self.feed(delta["content"])
            elif isinstance(choice.get("text"), str):
                choice["text"] = self.feed(choice["text"])
            if choice.get("finish_reason") and not self.blocked:
                rest = self.flush()
                if isinstance(delta, dict):
                    delta["content"] = (delta.get("content") or "") + rest
                else:
                    choice["text"] = (choice.get("text") or "") + rest
        return self.blocked
