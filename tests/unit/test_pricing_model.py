"""Known figures the roofline model must reproduce (issue #3), and its basic laws."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pricing import architecture as arch
from pricing import catalog, roofline
from pricing.estimate import DoesNotFit, estimate, usd_per_million_tokens
from pricing.roofline import Deployment


def deployment(model: str, gpu: str = "h100-sxm", gpus: int = 1, precision: str = "bf16", kv: str = "bf16") -> Deployment:
    return Deployment(catalog.model(model), catalog.gpu(gpu), gpus, precision, kv)


def test_70b_dense_fp16_moves_about_140_gb_of_weights_per_decode_step() -> None:
    moved = arch.decode_weight_bytes(catalog.model("llama-3.1-70b"), "fp16", batch=1)
    assert 138e9 < moved < 143e9


def test_llama2_13b_holds_about_6_7_gb_of_kv_at_8k_context_in_fp16() -> None:
    assert arch.kv_bytes_per_token(catalog.model("llama-2-13b"), "fp16") * 8192 == pytest.approx(6.7e9, rel=0.01)


def test_llama_3_2_1b_with_int8_kv_is_16_kib_per_token() -> None:
    assert arch.kv_bytes_per_token(catalog.model("llama-3.2-1b"), "int8") == 16 * 1024


def test_mla_caches_the_latent_not_the_heads() -> None:
    assert arch.kv_bytes_per_token(catalog.model("deepseek-v3"), "bf16") == 61 * (512 + 64) * 2


def test_prefill_flops_of_a_plain_mha_block() -> None:
    d, n = 4096, 2048
    block = catalog.ModelArch(id="mha", layers=1, hidden=d, heads=32, kv_heads=32, head_dim=128,
                              intermediate=4 * d, vocab=0, mlp="plain", attention="mha")
    assert arch.prefill_flops(block, n, causal=False) == pytest.approx(24 * n * d * d + 4 * n * n * d)
    assert arch.mha_layer_prefill_flops(n, d) == 24 * n * d * d + 4 * n * n * d


def test_cached_tokens_skip_prefill_matmuls_but_lengthen_attention() -> None:
    m = catalog.model("llama-3.1-8b")
    fresh = arch.prefill_flops(m, 1000)
    after_cache = arch.prefill_flops(m, 1000, cached_tokens=4000)
    assert after_cache > fresh
    assert arch.prefill_flops(m, 100, cached_tokens=4900) < arch.prefill_flops(m, 5000) / 10


def test_critical_batch_of_bf16_decode_on_h100_is_in_the_low_hundreds() -> None:
    batch = roofline.critical_batch(deployment("llama-3.1-70b", gpus=2), mean_context=0)
    assert batch is not None and 100 <= batch <= 400


def test_long_contexts_can_stay_memory_bound_at_any_batch() -> None:
    assert roofline.critical_batch(deployment("llama-2-13b"), mean_context=32_000) is None


def test_h100_at_2_50_serving_2500_tok_s() -> None:
    at_70 = usd_per_million_tokens(2.50, 2500, utilization=0.7)
    assert at_70 == pytest.approx(0.40, abs=0.01)
    assert usd_per_million_tokens(2.50, 2500, utilization=0.1) / at_70 == pytest.approx(7.0)


def test_mixtral_does_13b_of_work_with_47b_resident_and_does_not_fit_one_80gb_gpu_in_fp16() -> None:
    m = catalog.model("mixtral-8x7b")
    assert 12e9 < arch.active_params(m) < 14e9 and 46e9 < arch.total_params(m) < 48e9
    assert not roofline.fits(deployment("mixtral-8x7b", precision="fp16"))
    assert roofline.fits(deployment("mixtral-8x7b", gpus=2, precision="fp16"))


def test_moe_decode_reads_only_the_experts_the_batch_touches() -> None:
    m = catalog.model("mixtral-8x7b")
    one, many = arch.decode_weight_bytes(m, "bf16", 1), arch.decode_weight_bytes(m, "bf16", 256)
    assert one < 0.4 * many and many == pytest.approx(arch.weight_bytes(m, "bf16"), rel=0.001)


def test_70b_fits_one_80gb_gpu_in_int4_but_not_in_fp16() -> None:
    assert roofline.fits(deployment("llama-3.1-70b", precision="int4"))
    assert not roofline.fits(deployment("llama-3.1-70b", precision="fp16"))
    with pytest.raises(DoesNotFit, match="needs"):
        estimate(deployment("llama-3.1-70b", precision="fp16"), 1000, 100, 8)


def test_decode_gets_cheaper_per_token_as_the_batch_grows_until_compute_bound() -> None:
    d = deployment("llama-3.1-8b")
    costs = [estimate(d, 512, 256, c).usd_per_1m_output for c in (1, 8, 64, 256)]
    assert costs == sorted(costs, reverse=True)
    assert costs[0] / costs[1] > 5  # nearly free batching while memory-bound


def test_kv_cache_limits_concurrency_and_long_contexts_cost_concurrency() -> None:
    d = deployment("llama-3.1-70b", gpus=4)
    short, long = roofline.max_concurrency(d, 2_000), roofline.max_concurrency(d, 32_000)
    assert 16 * long <= short < 16 * (long + 1)  # 16x the tokens per sequence, floored
    result = estimate(d, 30_000, 2_000, 10_000)
    assert result.effective_concurrency == result.max_concurrency < 10_000


def test_tensor_parallelism_costs_communication() -> None:
    one, two = deployment("llama-3.1-8b"), deployment("llama-3.1-8b", gpus=2)
    assert roofline.decode_step_seconds(two, 64, 1000) > roofline.decode_step_seconds(one, 64, 1000) / 2


def test_idle_time_is_paid_for() -> None:
    d = deployment("llama-3.1-8b")
    busy, idle = estimate(d, 512, 256, 32, 2.0, 1.0), estimate(d, 512, 256, 32, 2.0, 0.25)
    assert idle.usd_per_1m_output == pytest.approx(4 * busy.usd_per_1m_output)


def test_hf_config_json_on_disk_is_a_model(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"num_hidden_layers": 16, "hidden_size": 2048, "num_attention_heads": 32,
                                  "num_key_value_heads": 8, "head_dim": 64, "intermediate_size": 8192,
                                  "vocab_size": 128256, "tie_word_embeddings": True}))
    m = catalog.model(str(config))
    assert arch.total_params(m) == arch.total_params(catalog.model("llama-3.2-1b"))


def test_unknown_ids_list_the_known_ones() -> None:
    with pytest.raises(catalog.CatalogError, match="h100-sxm"):
        catalog.gpu("h1000")
    with pytest.raises(catalog.CatalogError, match="llama-3.1-70b"):
        catalog.model("llama-9")


def test_required_catalog_ids_exist() -> None:
    for gpu in ("h100-sxm", "h100-pcie", "h200", "a100-80gb", "a100-40gb", "l40s", "l4", "a10g", "b200", "mi300x"):
        catalog.gpu(gpu)
    for model in ("llama-3.1-70b", "llama-2-13b", "mixtral-8x7b", "llama-3.2-1b", "llama-3.2-3b", "qwen2.5-1.5b"):
        catalog.model(model)
