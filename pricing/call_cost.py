"""The price of one call: API price tables, or GPU time attributed at the engine's operating point.

A self-hosted call is charged its share of the deployment's busy time: the prefill compute of its
uncached prompt tokens (cached ones skip prefill), plus, for each token it generated, 1/b of a
decode step at the running batch b, that step's attention reading the call's own context. That
time, on all of the deployment's GPUs, is priced at $/GPU-second. Idle GPU time is paid for too,
but it is nobody's call: the gateway reports it as idle capacity beside the calls' costs, and
``pricing estimate``'s utilization plans for it.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import roofline
from .prices import TokenPrices, Usage, api_call_cost
from .roofline import Deployment


@dataclass(frozen=True)
class OperatingPoint:
    """Where the engine is running now: from its live metrics, or from configuration."""

    running: float = 16.0  # sequences in the decode batch
    mean_context: float = 1024.0  # tokens per running sequence


@dataclass(frozen=True)
class SelfHostedPricing:
    deployment: Deployment
    usd_per_gpu_hour: float

    def call_seconds(self, usage: Usage, point: OperatingPoint) -> float:
        """Deployment wall time attributed to this call."""
        d = self.deployment
        new_tokens = usage.uncached_input + usage.cache_write
        prefill = roofline.prefill_compute_seconds(d, new_tokens, usage.cached_input) if new_tokens else 0.0
        batch = max(point.running, 1.0)
        decode = usage.output * roofline.decode_step_seconds(d, batch, point.mean_context) / batch
        return prefill + decode

    def cost(self, usage: Usage, point: OperatingPoint) -> float:
        usd_per_second = self.usd_per_gpu_hour * self.deployment.gpus / 3600
        return self.call_seconds(usage, point) * usd_per_second


@dataclass(frozen=True)
class ApiPricing:
    prices: TokenPrices

    def cost(self, usage: Usage, point: OperatingPoint | None = None) -> float:
        return api_call_cost(self.prices, usage)


Pricer = SelfHostedPricing | ApiPricing
