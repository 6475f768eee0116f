"""The simulator's timing comes from the pricing model: a preset is a real deployment.

``small`` is the cheap tier (Llama-3.1-8B in fp8 on one L40S), ``large`` the flagship
(Llama-3.1-70B in bf16 on four H100 SXM). Their prefill and decode-step times, and their
KV-cache capacity, are the roofline model's, so the simulator slows down with batch and prompt
length exactly as the prices assume.
"""

from __future__ import annotations

from dataclasses import dataclass

from pricing import catalog, roofline
from pricing.roofline import Deployment
from pricing.serving import RooflineTiming

from .textgen import Sureness


@dataclass(frozen=True)
class Preset:
    model: str
    gpu: str
    gpus: int
    precision: str
    sureness: Sureness  # how sure the simulated model sounds (its logprobs), easy to hard prompts

    def deployment(self) -> Deployment:
        kv = "bf16" if self.precision == "int4" else self.precision
        return Deployment(catalog.model(self.model), catalog.gpu(self.gpu), self.gpus, self.precision, kv)

    def as_config(self) -> dict[str, object]:
        """The gateway's ``deployment`` block for a backend served by this preset."""
        return {"model": self.model, "gpu": self.gpu, "gpus": self.gpus, "precision": self.precision}


PRESETS: dict[str, Preset] = {
    # A small model is sure of easy prompts and lost on hard ones; a large one stays fairly sure.
    "small": Preset("llama-3.1-8b", "l40s", 1, "fp8", Sureness(easy=0.92, hard=0.12)),
    "large": Preset("llama-3.1-70b", "h100-sxm", 4, "bf16", Sureness(easy=0.96, hard=0.66)),
}


def timing_for(preset: Preset) -> tuple[RooflineTiming, int]:
    """Timing and KV capacity (tokens) of a preset's deployment."""
    deployment = preset.deployment()
    return RooflineTiming(deployment), int(roofline.kv_capacity_tokens(deployment))
