"""The roofline and KV-cache model of one deployment (pure functions, no I/O).

A deployment is a model on N GPUs with tensor parallelism. Every time below is the wall time of
the whole deployment:

* decode step at batch b and mean context c: the larger of memory time (weights read once per
  step, plus every running sequence's KV cache and activations) and compute time (2 x active params per token,
  plus attention over the context), plus a fixed per-step overhead and the all-reduces of TP;
* prefill of n new tokens after m cached ones: compute-bound (cached tokens skip the matmuls but
  lengthen attention), never faster than one read of the weights;
* capacity: what GPU memory holds beside the weights, in KV-cache tokens.

Achieved fractions of peak (``Efficiency``) are per GPU architecture, calibrated against
published measurements (docs/pricing.md), and overridable.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from functools import lru_cache

from . import architecture as arch
from .catalog import DATA, GPU, ModelArch

ACTIVATION_BYTES = 2.0  # activations travel between GPUs in 16-bit


@dataclass(frozen=True)
class Efficiency:
    """Achieved fractions of datasheet peaks, and fixed costs, for one GPU architecture."""

    bandwidth: float = 0.8  # of peak memory bandwidth, in decode
    compute: float = 0.6  # of peak dense FLOP/s, in decode matmuls
    prefill: float = 0.6  # of peak dense FLOP/s, in prefill
    step_overhead_s: float = 0.002  # per decode step: scheduling, kernel launches, sampling
    memory_utilization: float = 0.9  # share of GPU memory the engine may use (vLLM's default)
    reserve_gb_per_gpu: float = 1.5  # activations, CUDA graphs, fragmentation


@dataclass(frozen=True)
class EngineProfile:
    """What the serving engine adds: fixed cost per step, and how its attention reads GQA KV heads."""

    step_overhead_s: float = 0.001
    # "shared": each KV head is read once for its group of query heads (vLLM, SGLang, current
    # TensorRT-LLM); "per_query_head": re-read for every query head (TensorRT-LLM before XQA).
    gqa_kv_reads: str = "shared"
    # Tokens one scheduler step may process (decode tokens first, then prompt chunks): chunked
    # prefill. None: whole prompts are prefilled in the step that admits them (lmdeploy's TurboMind
    # and TensorRT-LLM before chunked context), so requests that arrive together stay together.
    max_batched_tokens: int | None = 8192


def engine_profile(engine: str) -> EngineProfile:
    return engine_profiles().get(engine, EngineProfile())


@lru_cache(maxsize=1)
def _calibration() -> dict:
    return json.loads((DATA / "efficiency.json").read_text())


def calibrated_efficiencies() -> dict[str, Efficiency]:
    """The shipped, calibrated factors per GPU architecture (pricing/data/efficiency.json)."""
    return {name: Efficiency(**values) for name, values in _calibration()["architectures"].items()}


def engine_profiles() -> dict[str, EngineProfile]:
    return {name: EngineProfile(**values) for name, values in _calibration()["engines"].items()}


def default_efficiency(gpu: GPU, engine: str = "vllm") -> Efficiency:
    return _default_efficiency(gpu.arch, engine)


@lru_cache(maxsize=64)
def _default_efficiency(gpu_arch: str, engine: str) -> Efficiency:
    efficiency = calibrated_efficiencies().get(gpu_arch, Efficiency())
    profile = engine_profiles().get(engine, EngineProfile())
    return replace(efficiency, step_overhead_s=profile.step_overhead_s)


@dataclass(frozen=True)
class Deployment:
    model: ModelArch
    gpu: GPU
    gpus: int = 1
    weight_precision: str = "bf16"
    kv_precision: str = "bf16"
    efficiency: Efficiency | None = None
    engine: str = "vllm"  # a profile in pricing/data/efficiency.json: vllm, sglang, tgi, llamacpp, ...

    @property
    def eff(self) -> Efficiency:
        return self.efficiency or default_efficiency(self.gpu, self.engine)

    @property
    def kv_read_factor(self) -> float:
        """KV bytes a decode step reads per cached byte (see EngineProfile.gqa_kv_reads)."""
        return _kv_read_factor(self.engine, self.model.heads, self.model.kv_heads)

    @property
    def compute_precision(self) -> str:
        """Tensor-core precision of the matmuls: int4 is weight-only (16-bit math), fp8 needs fp8 units."""
        if self.weight_precision in ("fp8", "int8", "fp4") and self.gpu.dense_tflops.get(self.weight_precision):
            return self.weight_precision
        return "bf16"

    def with_efficiency(self, **changes: float) -> Deployment:
        return replace(self, efficiency=replace(self.eff, **changes))


@lru_cache(maxsize=64)
def _kv_read_factor(engine: str, heads: int, kv_heads: int) -> float:
    profile = engine_profiles().get(engine, EngineProfile())
    return heads / kv_heads if profile.gqa_kv_reads == "per_query_head" else 1.0


def _bandwidth(d: Deployment) -> float:
    return d.gpu.memory_bandwidth_tb_s * 1e12 * d.eff.bandwidth * d.gpus


def _flops(d: Deployment, fraction: float) -> float:
    return d.gpu.peak_flops(d.compute_precision) * fraction * d.gpus


def weight_bytes(d: Deployment) -> float:
    return arch.weight_bytes(d.model, d.weight_precision)


def kv_bytes_per_token(d: Deployment) -> float:
    return arch.kv_bytes_per_token(d.model, d.kv_precision)


def kv_capacity_tokens(d: Deployment) -> float:
    """KV-cache tokens that fit beside the weights (negative: the weights alone do not fit)."""
    usable = d.gpus * (d.gpu.memory_gb * 1e9 * d.eff.memory_utilization - d.eff.reserve_gb_per_gpu * 1e9)
    return (usable - weight_bytes(d)) / kv_bytes_per_token(d)


def fits(d: Deployment) -> bool:
    return kv_capacity_tokens(d) > 0


def max_concurrency(d: Deployment, tokens_per_sequence: int) -> int:
    """Sequences of this length whose KV cache fits at once (0 when the weights do not fit)."""
    return max(int(kv_capacity_tokens(d) // max(tokens_per_sequence, 1)), 0)


def allreduce_seconds(d: Deployment, tokens: float) -> float:
    """Tensor parallelism: two all-reduces of the activations per layer (ring algorithm)."""
    if d.gpus <= 1:
        return 0.0
    size = tokens * d.model.hidden * ACTIVATION_BYTES
    ring = 2 * (d.gpus - 1) / d.gpus * size / (d.gpu.interconnect_gb_s_per_direction * 1e9)
    return 2 * d.model.layers * (d.gpu.allreduce_latency_s + ring)


def decode_memory_seconds(d: Deployment, batch: float, mean_context: float) -> float:
    kv_read = batch * mean_context * kv_bytes_per_token(d) * d.kv_read_factor
    activations = batch * arch.activation_bytes_per_token(d.model)
    read = arch.decode_weight_bytes(d.model, d.weight_precision, batch) + kv_read + activations
    return read / _bandwidth(d)


def decode_compute_seconds(d: Deployment, batch: float, mean_context: float) -> float:
    return arch.decode_flops(d.model, batch, mean_context) / _flops(d, d.eff.compute)


def decode_step_seconds(d: Deployment, batch: float, mean_context: float) -> float:
    """One decode step of the whole running batch: roofline maximum plus fixed costs."""
    roofline = max(decode_memory_seconds(d, batch, mean_context), decode_compute_seconds(d, batch, mean_context))
    return roofline + d.eff.step_overhead_s + allreduce_seconds(d, batch)


def prefill_compute_seconds(d: Deployment, new_tokens: int, cached_tokens: int = 0) -> float:
    """Prefill matmuls and attention, as they add to a running batch (chunked prefill)."""
    flops = arch.prefill_flops(d.model, new_tokens, cached_tokens)
    return flops / _flops(d, d.eff.prefill) + allreduce_seconds(d, new_tokens)


def prefill_seconds(d: Deployment, new_tokens: int, cached_tokens: int = 0) -> float:
    """Prefill on its own: compute-bound, but never faster than one read of weights and cached KV."""
    floor = (weight_bytes(d) + cached_tokens * kv_bytes_per_token(d)) / _bandwidth(d)
    compute = arch.prefill_flops(d.model, new_tokens, cached_tokens) / _flops(d, d.eff.prefill)
    return max(compute, floor) + d.eff.step_overhead_s + allreduce_seconds(d, new_tokens)


def critical_batch(d: Deployment, mean_context: float) -> int | None:
    """Smallest batch at which a decode step turns compute-bound; None if it never does.

    With long contexts the KV reads grow with the batch as fast as the compute does, so a
    step can stay memory-bound at any batch size.
    """
    def compute_bound(batch: float) -> bool:
        return decode_compute_seconds(d, batch, mean_context) >= decode_memory_seconds(d, batch, mean_context)

    high = 1.0
    while not compute_bound(high):
        high *= 2
        if high > 1 << 22:
            return None
    low = high / 2
    while high - low > 0.5:
        middle = (low + high) / 2
        low, high = (low, middle) if compute_bound(middle) else (middle, high)
    return max(1, math.ceil(high))
