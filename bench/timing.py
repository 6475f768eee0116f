"""Timing a call many times on the current core: its p50 and p99 in microseconds."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def samples_us(call: Callable[[], object], count: int) -> list[float]:
    samples = []
    for _ in range(count):
        started = time.perf_counter_ns()
        call()
        samples.append((time.perf_counter_ns() - started) / 1000)
    return samples


def percentiles(samples: list[float]) -> tuple[float, float]:
    """p50 and p99."""
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(int(0.99 * len(ordered)), len(ordered) - 1)]


def percentiles_us(call: Callable[[], object], iterations: int, warmup: int = 100) -> tuple[float, float]:
    samples_us(call, warmup)
    return percentiles(samples_us(call, iterations))


def interleaved_percentiles_us(calls: dict[str, Callable[[], object]], iterations: int, rounds: int = 20,
                               warmup: int = 100) -> dict[str, tuple[float, float]]:
    """p50 and p99 of each call, timed in turns (``rounds`` blocks each) rather than one after the
    other: a stretch in which the machine runs slow (another tenant of the host, a burst of
    interrupts) then falls on every call alike, so their percentiles can be compared."""
    for call in calls.values():
        samples_us(call, warmup)
    block = max(1, iterations // rounds)
    samples: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            samples[name] += samples_us(call, block)
    return {name: percentiles(values) for name, values in samples.items()}
