"""Named timing presets for the simulator: a cheap small model and a flagship large one.

Until the pricing model times the simulator, these are plain, documented stand-ins: a small
model prefills fast and decodes in ~6 ms per step, a large one ~4x slower on both counts.
"""

from __future__ import annotations

from .engine import LinearTiming

PRESETS: dict[str, tuple[LinearTiming, float]] = {
    # name: (timing, confidence of its answers, used for logprobs)
    "small": (LinearTiming(prefill_tokens_per_s=40_000, step_base_s=0.006, step_per_seq_s=0.0001), 0.75),
    "large": (LinearTiming(prefill_tokens_per_s=10_000, step_base_s=0.024, step_per_seq_s=0.0004), 0.95),
}
