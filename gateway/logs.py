"""Warnings that repeat (Redis unreachable, an upstream failing) without flooding the log.

While Redis is down every request would otherwise log the same line; ``Warnings`` writes a message
at most once per ``interval_s`` and says how many were left out since the last time.
"""

from __future__ import annotations

import logging
import time


class Warnings:
    def __init__(self, logger: logging.Logger, interval_s: float = 10.0) -> None:
        self.logger = logger
        self.interval_s = interval_s
        self._last: dict[str, float] = {}
        self._quiet: dict[str, int] = {}

    def warn(self, message: str, key: str | None = None) -> None:
        """Log ``message`` unless one with the same ``key`` (default: the message) was logged lately."""
        key = message if key is None else key
        now = time.monotonic()
        if now - self._last.get(key, -self.interval_s) < self.interval_s:
            self._quiet[key] = self._quiet.get(key, 0) + 1
            return
        self._last[key] = now
        skipped = self._quiet.pop(key, 0)
        self.logger.warning("%s%s", message, f" ({skipped} more like it since the last)" if skipped else "")
