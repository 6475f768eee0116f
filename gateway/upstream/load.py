"""How busy a replica has been: time integrals of its running sequences, over a sliding window.

Pricing needs a self-hosted replica's operating point: how many sequences share its decode steps.
One reading is noise (a poll that happens to catch a call, or to miss it, moved prices 14x), so
each replica keeps ``LoadWindow``: the time integral of running sequences, and of the time
anything was running, in one-second buckets. Two sources feed it:

- this gateway's own requests in flight on the replica, exact (``begin`` and ``end`` at every send
  and answer): all an engine without metrics (llama-cpp-python's server) can give;
- the engine's own counts, from its metrics (``engine_reading``): whatever it holds beyond this
  gateway's requests (other gateways, other workers) is added, and what waits in its queue rather
  than running is taken off, both held until the next reading.

The operating point is the average batch *while busy*: the running integral over the busy
integral. Idle time does not lower it: the deployment's idle time is reported as idle capacity
(``busy_seconds`` over a metering slot), not spread over the calls that were served.
"""

from __future__ import annotations

import math
from collections import deque

KEEP_S = 180  # buckets kept: the pricing window and the metering slots look back less than this


class LoadWindow:
    def __init__(self, now: float) -> None:
        self.own = 0  # this gateway's requests in flight
        self._foreign = 0.0  # what the engine holds beyond them, as of its last reading
        self._queued = 0.0  # what waits in the engine's queue, as of its last reading
        self._since = now
        self._buckets: deque[list[float]] = deque()  # [second, running integral, busy integral]
        self._settled: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)  # integrals' cache

    @property
    def running(self) -> float:
        """Sequences in the batch now (estimated between engine readings); at least 1 while busy."""
        held = self.own + self._foreign
        return max(held - self._queued, 1.0) if held > 0 else 0.0

    def begin(self, now: float) -> None:
        self._advance(now)
        self.own += 1

    def end(self, now: float) -> None:
        self._advance(now)
        self.own -= 1

    def engine_reading(self, running: float, waiting: float, now: float) -> None:
        """The engine says it runs ``running`` sequences now and has ``waiting`` queued."""
        self._advance(now)
        self._foreign = max(running + waiting - self.own, 0.0)
        self._queued = waiting

    def integrals(self, now: float, window_s: float) -> tuple[float, float]:
        """Sequence-seconds run, and seconds busy, over the last ``window_s``.

        Buckets before the current second never change again, so their sum is kept until the
        second turns: a price reads the window on every call (the budget is ~20 us per call)."""
        self._advance(now)
        first, current = math.floor(now - window_s), math.floor(now)
        if self._settled[:2] != (first, current):
            running = busy = 0.0
            for second, run, occupied in self._buckets:
                if first <= second < current:
                    running += run
                    busy += occupied
            self._settled = (first, current, running, busy)
        running, busy = self._settled[2], self._settled[3]
        if self._buckets and self._buckets[-1][0] >= current:
            running += self._buckets[-1][1]
            busy += self._buckets[-1][2]
        return running, busy

    def busy_seconds(self, start: float, end: float, now: float) -> float:
        """Seconds within whole seconds [start, end) during which anything was running."""
        self._advance(now)
        return sum(occupied for second, _, occupied in self._buckets if start <= second < end)

    def _advance(self, now: float) -> None:
        """Add the current value's integral from the last change up to ``now``."""
        t, value = self._since, self.running
        if now <= t:
            return
        if value > 0:
            while t < now:
                second = math.floor(t)
                until = min(now, second + 1.0)
                step = until - t
                if self._buckets and self._buckets[-1][0] == second:
                    bucket = self._buckets[-1]
                    bucket[1] += value * step
                    bucket[2] += step
                else:
                    self._buckets.append([second, value * step, step])
                t = until
        self._since = now
        oldest = math.floor(now) - KEEP_S
        while self._buckets and self._buckets[0][0] < oldest:
            self._buckets.popleft()


def average_batch(windows: list[LoadWindow], now: float, window_s: float) -> float | None:
    """Mean running sequences while busy, over the last ``window_s`` of these replicas; None if they
    were idle throughout."""
    running = busy = 0.0
    for window in windows:
        run, occupied = window.integrals(now, window_s)
        running += run
        busy += occupied
    return running / busy if busy > 1e-9 else None
