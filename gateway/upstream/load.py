"""How busy a replica is: the time integral of its running sequences.

Pricing needs a self-hosted call's operating point: how many sequences shared its decode steps.
One reading is noise (a poll that happens to catch a call, or to miss it, moved prices 14x), so
each replica integrates its running sequences over time. Two sources feed it:

- this gateway's own requests in flight on the replica, exact (``begin`` and ``end`` at every send
  and answer): all an engine without metrics (llama-cpp-python's server) can give; capped at the
  engine's slots (``deployment.max_running``) when they are known, since the rest wait;
- the engine's own counts, from its metrics (``engine_reading``): whatever it holds beyond this
  gateway's requests (other gateways, other workers) is added, and what waits in its queue rather
  than running is taken off, both held until the next reading. Only what two readings in a row
  agree on counts: one reading often catches a request the engine has finished and the gateway has
  not yet heard of, or one that arrived and waits for the next step; held for a whole poll
  interval, such a phantom moved identical calls' prices by 5-10% under a steady load.

Three readings come out of it:

- ``mean_running(stint)``: a call's own mean batch, the integral over its own time on the replica
  divided by that time (for calls shorter than 2 s, the mean while busy over the last 2 s). A call is priced at it: exact whatever came and went meanwhile, so
  identical calls at the same load cost the same, and prices add up to the busy time (a trailing
  average does not: it overcharges every call while load ramps up).
- ``integrals`` over a window (one-second buckets): the mean batch *while busy*, the flagship
  counterfactual's operating point (the flagship did not run the call).
- ``busy_seconds``: the time anything ran, for the idle-capacity report (``metering.py``).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

MIN_SPAN_S = 2.0  # a call's batch is averaged over at least this long
KEEP_S = 180  # buckets kept: the pricing window and the metering slots look back less than this


@dataclass
class Stint:
    """One request's time on a replica: the running integral when it began, and when it ended."""

    started: float
    area_at_start: float
    ended: float | None = None
    area_at_end: float = 0.0


class LoadWindow:
    def __init__(self, now: float, max_running: int | None = None) -> None:
        self.max_running = max_running  # the engine's slots: what runs beyond them waits
        self.own = 0  # this gateway's requests in flight
        self._foreign = 0.0  # what the engine holds beyond them, as of its last reading
        self._queued = 0.0  # what waits in the engine's queue, as of its last reading
        self._last_reading = (0.0, 0.0)  # (foreign, queued) as the previous reading alone saw them
        self._since = now
        self._area = 0.0  # sequence-seconds run since creation: a request's own mean batch is a difference
        self._buckets: deque[list[float]] = deque()  # [second, running integral, busy integral]
        self._settled: dict[float, tuple[int, float, float]] = {}  # window -> (second, running, busy) of settled buckets

    @property
    def running(self) -> float:
        """Sequences in the batch now (estimated between engine readings); at least 1 while busy."""
        held = self.own + self._foreign
        if held <= 0:
            return 0.0
        running = max(held - self._queued, 1.0)
        return min(running, self.max_running) if self.max_running is not None else running

    def begin(self, now: float) -> Stint:
        self._advance(now)
        self.own += 1
        return Stint(now, self._area)

    def end(self, stint: Stint, now: float) -> None:
        self._advance(now)
        self.own -= 1
        stint.ended, stint.area_at_end = now, self._area

    def mean_running(self, stint: Stint, now: float, at_least_s: float = MIN_SPAN_S) -> float:
        """The mean batch a request ran in over its own time on the replica (itself included): the
        batch its decode steps were shared with, whatever came and went meanwhile. A request shorter
        than ``at_least_s`` is priced at the mean while busy over the last ``at_least_s`` (whole
        seconds) instead: over a fraction of a second, a neighbour's gap between two requests would
        move its price by a sequence's share."""
        if stint.ended is None:
            self._advance(now)
            end, area = now, self._area
        else:
            end, area = stint.ended, stint.area_at_end
        if end - stint.started < at_least_s:
            running, busy = self.integrals(now, at_least_s)
            if busy > 1e-9:
                return max(running / busy, 1.0)
        return (area - stint.area_at_start) / (end - stint.started) if end > stint.started else max(self.running, 1.0)

    def engine_reading(self, running: float, waiting: float, now: float) -> None:
        """The engine says it runs ``running`` sequences now and has ``waiting`` queued: what this
        reading and the one before both saw is applied (a count rises a reading late, falls at once)."""
        self._advance(now)
        foreign = max(running + waiting - self.own, 0.0)
        previous_foreign, previous_queued = self._last_reading
        self._foreign, self._queued = min(foreign, previous_foreign), min(waiting, previous_queued)
        self._last_reading = (foreign, waiting)

    def integrals(self, now: float, window_s: float) -> tuple[float, float]:
        """Sequence-seconds run, and seconds busy, over the last ``window_s``.

        Buckets before the current second never change again, so their sum is kept (per window
        length: a call's own 2 s and the flagship's 60 s) until the second turns: a price reads
        the window on every call (the budget is ~20 us per call)."""
        self._advance(now)
        first, current = math.floor(now - window_s), math.floor(now)
        settled = self._settled.get(window_s)
        if settled is None or settled[0] != current:
            running = busy = 0.0
            for second, run, occupied in self._buckets:
                if first <= second < current:
                    running += run
                    busy += occupied
            settled = self._settled[window_s] = (current, running, busy)
        _, running, busy = settled
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
            self._area += value * (now - t)
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
