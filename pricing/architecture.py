"""What a model architecture weighs and costs: parameters, bytes, and FLOPs (pure functions).

Conventions: a multiply-add is 2 FLOPs; parameters exclude norms and biases (well under 0.1%);
the input embedding is a table lookup (bytes, no FLOPs) while the output projection (lm_head,
tied or not) is a matmul on every generated token.
"""

from __future__ import annotations

from functools import lru_cache

from .catalog import ModelArch

BYTES_PER_VALUE = {"fp32": 4.0, "fp16": 2.0, "bf16": 2.0, "fp8": 1.0, "int8": 1.0, "int4": 0.5, "fp4": 0.5}
# Quantized weights carry scales: group-wise int4 (group 128, fp16 scale+zero) adds ~3%.
_SCALE_OVERHEAD = {"int4": 0.03, "fp4": 0.03, "int8": 0.005, "fp8": 0.005}


def bytes_per_weight(precision: str) -> float:
    if precision not in BYTES_PER_VALUE:
        raise ValueError(f"unknown precision {precision!r}; use one of {', '.join(BYTES_PER_VALUE)}")
    return BYTES_PER_VALUE[precision] * (1 + _SCALE_OVERHEAD.get(precision, 0.0))


def attention_params(m: ModelArch) -> int:
    """Weights of one attention block (q, k, v, o projections; MLA's low-rank factors)."""
    if m.attention == "mla":
        qk_dim = m.qk_nope_head_dim + m.qk_rope_head_dim
        q = (m.hidden * m.q_lora_rank + m.q_lora_rank * m.heads * qk_dim) if m.q_lora_rank else m.hidden * m.heads * qk_dim
        kv_down = m.hidden * (m.kv_lora_rank + m.qk_rope_head_dim)
        kv_up = m.kv_lora_rank * m.heads * (m.qk_nope_head_dim + m.v_head_dim)
        return q + kv_down + kv_up + m.heads * m.v_head_dim * m.hidden
    q_and_o = 2 * m.hidden * m.heads * m.head_dim
    k_and_v = 2 * m.hidden * m.kv_heads * m.head_dim
    return q_and_o + k_and_v


def _mlp_params(m: ModelArch, intermediate: int) -> int:
    return (3 if m.mlp == "gated" else 2) * m.hidden * intermediate


def layer_mlp_params(m: ModelArch, layer: int) -> tuple[int, int]:
    """(resident, active per token) MLP weights of one layer."""
    if not m.is_moe or layer < m.dense_layers:
        dense = _mlp_params(m, m.intermediate)
        return dense, dense
    expert = _mlp_params(m, m.moe_intermediate)
    router = m.hidden * m.experts
    resident = (m.experts + m.shared_experts) * expert + router
    active = (m.experts_per_token + m.shared_experts) * expert + router
    return resident, active


def embedding_params(m: ModelArch) -> int:
    return m.vocab * m.hidden * (1 if m.tied_embeddings else 2)


@lru_cache(maxsize=256)
def total_params(m: ModelArch) -> int:
    mlp = sum(layer_mlp_params(m, i)[0] for i in range(m.layers))
    return m.layers * attention_params(m) + mlp + embedding_params(m)


@lru_cache(maxsize=256)
def active_params(m: ModelArch) -> int:
    """Weights one token's forward pass multiplies with (MoE: only the routed experts)."""
    mlp = sum(layer_mlp_params(m, i)[1] for i in range(m.layers))
    return m.layers * attention_params(m) + mlp + m.vocab * m.hidden  # lm_head; the embedding is a lookup


def weight_bytes(m: ModelArch, precision: str) -> float:
    return total_params(m) * bytes_per_weight(precision)


def expected_experts_touched(m: ModelArch, batch: float) -> float:
    """Distinct routed experts a layer reads for ``batch`` tokens, if routing were uniform."""
    if not m.is_moe:
        return 0.0
    miss = (1 - m.experts_per_token / m.experts) ** max(batch, 0.0)
    return m.experts * (1 - miss)


def decode_weight_bytes(m: ModelArch, precision: str, batch: float) -> float:
    """Weights a decode step reads: all of a dense model, only the touched experts of an MoE."""
    if not m.is_moe:
        return weight_bytes(m, precision)
    expert = _mlp_params(m, m.moe_intermediate)
    moe_layers = m.layers - m.dense_layers
    untouched = moe_layers * (m.experts - expected_experts_touched(m, batch)) * expert
    return (total_params(m) - untouched) * bytes_per_weight(precision)


def kv_values_per_token_per_layer(m: ModelArch) -> int:
    """Cached values per token and layer: K and V per KV head, or MLA's latent plus RoPE key."""
    if m.attention == "mla":
        return m.kv_lora_rank + m.qk_rope_head_dim
    return 2 * m.kv_heads * m.head_dim


def kv_bytes_per_token(m: ModelArch, kv_precision: str) -> float:
    return m.layers * kv_values_per_token_per_layer(m) * BYTES_PER_VALUE[kv_precision]


@lru_cache(maxsize=256)
def activation_bytes_per_token(m: ModelArch) -> float:
    """HBM traffic of one token's activations in a decode step: every matmul output is written
    and read back once (q/k/v, attention output, o-projection, norms and residual, the MLP's
    gate/up, activation and down outputs), in 16-bit. Negligible at batch 1, as large as the
    weights of a 7B model at batch ~1000.
    """
    _, active_mlp = layer_mlp_params(m, m.layers - 1)
    mlp_width = active_mlp / m.hidden / (3 if m.mlp == "gated" else 2)
    kv_width = 2 * m.kv_heads * m.head_dim if m.attention != "mla" else m.kv_lora_rank + m.qk_rope_head_dim
    per_layer = 6 * m.hidden + kv_width + 3 * mlp_width
    return m.layers * per_layer * 2 * 2.0  # written and read, 2 bytes each


def _attention_width(m: ModelArch) -> int:
    """Per-token width of the score and value products (heads x head dim)."""
    if m.attention == "mla":
        return m.heads * (m.qk_nope_head_dim + m.qk_rope_head_dim + m.v_head_dim) // 2
    return m.heads * m.head_dim


def prefill_flops(m: ModelArch, new_tokens: int, cached_tokens: int = 0, causal: bool = True) -> float:
    """FLOPs to prefill ``new_tokens`` after ``cached_tokens`` already in the KV cache.

    Cached tokens cost no matmuls; they only lengthen what each new token attends to. With
    ``causal`` the i-th new token attends to ``cached + i`` tokens (what FlashAttention does);
    without it, to all of them (the textbook ``4 n^2 d`` attention term).
    """
    n, width = new_tokens, _attention_width(m)
    attended = n * cached_tokens + (n * (n + 1) / 2 if causal else n * n)
    linear = 2.0 * active_params(m) * n
    return linear + m.layers * 4.0 * width * attended


def decode_flops(m: ModelArch, batch: float, mean_context: float) -> float:
    """FLOPs of one decode step: every sequence's token through the weights plus its attention."""
    return batch * (2.0 * active_params(m) + m.layers * 4.0 * _attention_width(m) * mean_context)


def mha_layer_prefill_flops(n: int, d: int) -> float:
    """Textbook check: a plain MHA block with a 4x MLP, non-causal: 24 n d^2 + 4 n^2 d."""
    return 24.0 * n * d * d + 4.0 * n * n * d
