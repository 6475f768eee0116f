"""GPU and model catalogs: shipped JSON data (with sources), user additions, and HF config.json files.

The shipped catalogs live in ``pricing/data``; every entry keeps the sources its numbers came
from. Users add or override entries in the gateway config, or point at a Hugging Face style
``config.json`` on disk (nothing is ever downloaded).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from functools import lru_cache
from pathlib import Path
from typing import Any

DATA = Path(__file__).parent / "data"


class CatalogError(ValueError):
    """An unknown id or an unusable description; the message lists what is known."""


@dataclass(frozen=True)
class GPU:
    id: str
    name: str
    arch: str
    memory_gb: float
    memory_bandwidth_tb_s: float
    dense_tflops: dict[str, float]
    interconnect_gb_s_per_direction: float = 32.0
    allreduce_latency_s: float = 20e-6
    usd_per_hour: float = 2.0

    def peak_flops(self, compute_precision: str) -> float:
        """Dense peak FLOP/s for a compute precision, falling back to 16-bit when unsupported."""
        tflops = self.dense_tflops.get(compute_precision) or self.dense_tflops.get("bf16") or self.dense_tflops["fp16"]
        return tflops * 1e12


@dataclass(frozen=True)
class ModelArch:
    id: str
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int
    name: str = ""
    mlp: str = "gated"  # gated (SwiGLU/GeGLU: 3 matrices) or plain (2 matrices)
    attention: str = "gqa"  # mha, gqa, mqa or mla
    tied_embeddings: bool = False
    experts: int = 0  # routed experts per MoE layer (0: dense model)
    experts_per_token: int = 0
    shared_experts: int = 0
    moe_intermediate: int = 0
    dense_layers: int = 0  # leading layers with a dense MLP in an MoE model
    kv_lora_rank: int = 0  # MLA
    q_lora_rank: int = 0
    qk_rope_head_dim: int = 0
    qk_nope_head_dim: int = 0
    v_head_dim: int = 0
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def is_moe(self) -> bool:
        return self.experts > 0


def _from_entry(cls: type, entry: dict[str, Any]) -> Any:
    known = {f.name for f in fields(cls)}
    values = {k: v for k, v in entry.items() if k in known}
    if cls is ModelArch:
        values["extra"] = {k: v for k, v in entry.items() if k not in known}
    try:
        return cls(**values)
    except TypeError as err:
        raise CatalogError(f"incomplete {cls.__name__} entry {entry.get('id')!r}: {err}") from None


@lru_cache(maxsize=1)
def shipped_gpus() -> dict[str, GPU]:
    entries = json.loads((DATA / "gpus.json").read_text())["gpus"]
    return {e["id"]: _from_entry(GPU, e) for e in entries}


@lru_cache(maxsize=1)
def shipped_models() -> dict[str, ModelArch]:
    entries = json.loads((DATA / "models.json").read_text())["models"]
    return {e["id"]: _from_entry(ModelArch, e) for e in entries}


def gpu(gpu_id: str, extra: dict[str, GPU] | None = None) -> GPU:
    known = {**shipped_gpus(), **(extra or {})}
    if gpu_id.lower() not in known:
        raise CatalogError(f"unknown GPU {gpu_id!r}; known: {', '.join(sorted(known))}")
    return known[gpu_id.lower()]


def model(model_id: str, extra: dict[str, ModelArch] | None = None) -> ModelArch:
    """A catalog model by id, or a model read from a config.json path."""
    known = {**shipped_models(), **(extra or {})}
    if model_id.lower() in known:
        return known[model_id.lower()]
    path = Path(model_id)
    if path.suffix == ".json" and path.is_file():
        return model_from_hf_config(json.loads(path.read_text()), model_id=path.parent.name or path.stem)
    raise CatalogError(f"unknown model {model_id!r}; known: {', '.join(sorted(known))} (or a config.json path)")


def gpu_from_entry(entry: dict[str, Any]) -> GPU:
    return _from_entry(GPU, entry)


def model_from_entry(entry: dict[str, Any]) -> ModelArch:
    return _from_entry(ModelArch, entry)


def model_from_hf_config(config: dict[str, Any], model_id: str = "custom") -> ModelArch:
    """A ModelArch from a Hugging Face ``config.json`` (Llama, Mistral, Qwen, Gemma, Mixtral, DeepSeek)."""
    config = config.get("text_config", config)
    try:
        heads = config["num_attention_heads"]
        hidden = config["hidden_size"]
        kv_heads = config.get("num_key_value_heads") or heads
        entry: dict[str, Any] = {
            "id": model_id,
            "layers": config["num_hidden_layers"],
            "hidden": hidden,
            "heads": heads,
            "kv_heads": kv_heads,
            "head_dim": config.get("head_dim") or hidden // heads,
            "intermediate": config["intermediate_size"],
            "vocab": config["vocab_size"],
            "tied_embeddings": bool(config.get("tie_word_embeddings", False)),
            "attention": "mha" if kv_heads == heads else ("mqa" if kv_heads == 1 else "gqa"),
        }
    except KeyError as err:
        raise CatalogError(f"config.json lacks {err.args[0]!r}") from None
    experts = config.get("num_local_experts") or config.get("n_routed_experts") or config.get("num_experts") or 0
    if experts:
        entry.update(
            experts=experts,
            experts_per_token=config.get("num_experts_per_tok", 2),
            shared_experts=config.get("n_shared_experts", 0) or 0,
            moe_intermediate=config.get("moe_intermediate_size") or config["intermediate_size"],
            dense_layers=config.get("first_k_dense_replace", 0) or 0,
        )
    if config.get("kv_lora_rank"):
        entry.update(
            attention="mla",
            kv_lora_rank=config["kv_lora_rank"],
            q_lora_rank=config.get("q_lora_rank") or 0,
            qk_rope_head_dim=config["qk_rope_head_dim"],
            qk_nope_head_dim=config["qk_nope_head_dim"],
            v_head_dim=config["v_head_dim"],
            head_dim=config["qk_rope_head_dim"] + config["qk_nope_head_dim"],
        )
    return model_from_entry(entry)
