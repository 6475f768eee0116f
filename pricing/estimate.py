"""Steady-state figures of a deployment serving fixed-size requests (what ``tollgate pricing estimate`` prints).

The scenario: ``concurrency`` sequences are in flight, each with ``input_len`` prompt tokens and
``output_len`` generated tokens, and each is replaced by a new one when it finishes (continuous
batching). If memory holds fewer sequences, only that many run (``effective_concurrency``) and
the rest wait. In one "round" every running sequence is prefilled once and decoded
``output_len`` times, so:

    round = output_len x decode_step(batch, input_len + output_len / 2) + batch x prefill(input_len)

and throughput is batch x tokens / round. Time per output token includes the stalls other
sequences' prefills cause; time to first token is a request's own prefill, plus (when others
are running) on average half of the decode step in progress when it arrives. Cost: the deployment's $/s (GPUs x $/GPU-hour / 3600), divided by utilization (idle
time is paid for too), spread over the tokens served; input tokens carry the prefill share,
output tokens the decode share.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from . import roofline
from .roofline import Deployment


@dataclass(frozen=True)
class Estimate:
    ttft_ms: float
    tpot_ms: float
    output_tok_s: float
    total_tok_s: float
    kv_bytes_per_token: float
    max_concurrency: int
    critical_batch: int | None
    usd_per_1m_input: float
    usd_per_1m_output: float
    effective_concurrency: int
    weights_gb: float
    kv_capacity_tokens: int
    decode_bound: str  # "memory" or "compute" at the operating point
    usd_per_hour: float

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


class DoesNotFit(ValueError):
    """The weights (or one sequence's KV cache) do not fit in the deployment's memory."""


def usd_per_million_tokens(usd_per_hour: float, tokens_per_s: float, utilization: float = 1.0) -> float:
    """Cost per 1M tokens = $/hour / tokens per hour, with idle time (1 - utilization) paid for too."""
    return usd_per_hour / (tokens_per_s * 3600 * utilization) * 1e6


def estimate(
    d: Deployment,
    input_len: int,
    output_len: int,
    concurrency: int,
    usd_per_gpu_hour: float | None = None,
    utilization: float = 1.0,
) -> Estimate:
    if input_len < 1 or output_len < 1 or concurrency < 1:
        raise ValueError("input_len, output_len and concurrency must be at least 1")
    if not 0 < utilization <= 1:
        raise ValueError("utilization must be in (0, 1]")
    capacity = roofline.max_concurrency(d, input_len + output_len)
    if capacity < 1:
        raise DoesNotFit(_does_not_fit_message(d, input_len + output_len))
    batch = min(concurrency, capacity)
    context = input_len + output_len / 2
    step = roofline.decode_step_seconds(d, batch, context)
    prefill_share = batch * roofline.prefill_compute_seconds(d, input_len)
    decode_share = output_len * step
    round_s = decode_share + prefill_share
    usd_per_hour = (usd_per_gpu_hour if usd_per_gpu_hour is not None else d.gpu.usd_per_hour) * d.gpus
    usd_per_s = usd_per_hour / 3600 / utilization
    memory = roofline.decode_memory_seconds(d, batch, context)
    compute = roofline.decode_compute_seconds(d, batch, context)
    return Estimate(
        ttft_ms=1000 * (roofline.prefill_seconds(d, input_len) + (step / 2 if batch > 1 else 0.0)),
        tpot_ms=1000 * round_s / output_len,
        output_tok_s=batch * output_len / round_s,
        total_tok_s=batch * (input_len + output_len) / round_s,
        kv_bytes_per_token=roofline.kv_bytes_per_token(d),
        max_concurrency=capacity,
        critical_batch=roofline.critical_batch(d, context),
        usd_per_1m_input=usd_per_s * prefill_share / (batch * input_len) * 1e6,
        usd_per_1m_output=usd_per_s * decode_share / (batch * output_len) * 1e6,
        effective_concurrency=batch,
        weights_gb=roofline.weight_bytes(d) / 1e9,
        kv_capacity_tokens=int(roofline.kv_capacity_tokens(d)),
        decode_bound="memory" if memory >= compute else "compute",
        usd_per_hour=usd_per_hour,
    )


def prefill_fraction(d: Deployment, input_len: int, output_len: int, batch: int) -> float:
    """The share of a deployment's GPU time that prefill takes at this batch (the rest is decode
    steps): how its $/hour splits between input and output tokens."""
    context = input_len + output_len / 2
    prefill = batch * roofline.prefill_compute_seconds(d, input_len)
    decode = output_len * roofline.decode_step_seconds(d, batch, context)
    return prefill / (prefill + decode)


def _does_not_fit_message(d: Deployment, tokens_per_sequence: int) -> str:
    weights = roofline.weight_bytes(d) / 1e9
    memory = d.gpu.memory_gb * d.gpus
    if not roofline.fits(d):
        return (f"{d.model.id} in {d.weight_precision} needs {weights:.1f} GB of weights; "
                f"{d.gpus} x {d.gpu.id} has {memory:.0f} GB ({d.eff.memory_utilization:.0%} usable)")
    return f"one sequence of {tokens_per_sequence} tokens does not fit beside the weights"
