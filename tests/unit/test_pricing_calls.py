"""A price for every call: API tables, cached tokens never billed twice, self-hosted attribution."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.config import parse_settings
from gateway.stages.pricing import Pricing
from gateway.upstream.engine_metrics import EngineLoad, metrics_url, parse_engine_metrics
from pricing import catalog
from pricing.api_table import price_table
from pricing.call_cost import OperatingPoint, SelfHostedPricing
from pricing.prices import TokenPrices, Usage, api_call_cost, load_litellm_prices, normalize_usage
from pricing.roofline import Deployment

PRICES = TokenPrices.per_million(input=2.0, output=8.0, cached_input=0.5, cache_write=2.5)


def test_openai_prompt_tokens_include_cached_ones() -> None:
    usage = normalize_usage({"prompt_tokens": 1000, "completion_tokens": 100, "prompt_tokens_details": {"cached_tokens": 800}})
    assert usage == Usage(uncached_input=200, cached_input=800, cache_write=0, output=100)
    assert api_call_cost(PRICES, usage) == pytest.approx((200 * 2.0 + 800 * 0.5 + 100 * 8.0) / 1e6)


def test_anthropic_usage_reports_cache_reads_and_writes_beside_input() -> None:
    usage = normalize_usage({"input_tokens": 50, "cache_read_input_tokens": 900, "cache_creation_input_tokens": 300,
                             "output_tokens": 20})
    assert usage.prompt_tokens == 1250
    assert api_call_cost(PRICES, usage) == pytest.approx((50 * 2.0 + 900 * 0.5 + 300 * 2.5 + 20 * 8.0) / 1e6)


def test_missing_cache_prices_fall_back_to_input_price_and_garbage_counts_as_zero() -> None:
    plain = TokenPrices.per_million(1.0, 1.0)
    assert api_call_cost(plain, normalize_usage({"prompt_tokens": 10, "prompt_tokens_details": {"cached_tokens": 4}})) == pytest.approx(10 / 1e6)
    assert normalize_usage({"prompt_tokens": "lots", "completion_tokens": -3}) == Usage(0, 0, 0, 0)
    assert normalize_usage({"prompt_tokens": 5, "prompt_tokens_details": {"cached_tokens": 9}}).uncached_input == 0


def test_litellm_price_map_is_read_from_a_local_file(tmp_path: Path) -> None:
    path = tmp_path / "model_prices_and_context_window.json"
    path.write_text(json.dumps({
        "sample_spec": {"input_cost_per_token": 0, "output_cost_per_token": 0},
        "gpt-4o": {"input_cost_per_token": 2.5e-06, "output_cost_per_token": 1e-05, "cache_read_input_token_cost": 1.25e-06},
        "claude-sonnet": {"input_cost_per_token": 3e-06, "output_cost_per_token": 1.5e-05,
                          "cache_read_input_token_cost": 3e-07, "cache_creation_input_token_cost": 3.75e-06},
        "embedding-only": {"input_cost_per_token": 1e-07},
    }))
    prices = load_litellm_prices(path)
    assert set(prices) == {"gpt-4o", "claude-sonnet"}
    assert prices["claude-sonnet"].cache_write == pytest.approx(3.75e-06)


def _pricing(running: float = 16) -> tuple[SelfHostedPricing, OperatingPoint]:
    d = Deployment(catalog.model("llama-3.1-8b"), catalog.gpu("h100-sxm"), 1, "bf16", "bf16")
    return SelfHostedPricing(d, usd_per_gpu_hour=2.5), OperatingPoint(running, 2000)


def test_self_hosted_cached_tokens_skip_prefill_and_bigger_batches_share_decode() -> None:
    pricing, point = _pricing()
    cold = pricing.cost(Usage(4000, 0, 0, 200), point)
    warm = pricing.cost(Usage(100, 3900, 0, 200), point)
    assert warm < cold
    assert pricing.cost(Usage(0, 0, 0, 200), OperatingPoint(64, 2000)) < pricing.cost(Usage(0, 0, 0, 200), OperatingPoint(4, 2000)) / 5


def test_self_hosted_cost_is_busy_gpu_seconds_times_price_with_no_idle_time_in_it() -> None:
    pricing, point = _pricing()
    usage = Usage(1000, 0, 0, 100)
    assert pricing.cost(usage, point) == pytest.approx(pricing.call_seconds(usage, point) * 2.5 / 3600)


def test_engine_metrics_give_the_operating_point() -> None:
    text = ('vllm:num_requests_running{model_name="m"} 12.0\nvllm:num_requests_waiting{model_name="m"} 3.0\n'
            'vllm:gpu_cache_usage_perc{model_name="m"} 0.25\n# HELP x\nother 1\n')
    assert parse_engine_metrics(text) == EngineLoad(running=12, waiting=3)
    assert parse_engine_metrics("sglang:num_running_reqs 4\nsglang:token_usage 0.5\n") == EngineLoad(4, 0)
    assert parse_engine_metrics("garbage\n") is None
    assert metrics_url("http://h:8000/v1", "/metrics") == "http://h:8000/metrics"


def _billing(tmp_path: Path) -> Pricing:
    litellm = tmp_path / "prices.json"
    litellm.write_text(json.dumps({"gpt-4o-mini": {"input_cost_per_token": 1.5e-07, "output_cost_per_token": 6e-07}}))
    return Pricing(parse_settings({
        "backends": [
            {"name": "gpu", "kind": "vllm", "urls": ["http://a/v1"],
             "deployment": {"model": "llama-3.1-70b", "gpu": "h100-sxm", "gpus": 4, "usd_per_gpu_hour": 2.0}},
            {"name": "api", "kind": "openai", "urls": ["https://b/v1"], "prices": {"special": {"input": 1, "output": 2}}},
        ],
        "models": [{"name": "big", "tier": "flagship", "targets": [{"backend": "gpu"}]},
                   {"name": "mini", "tier": "cheap", "targets": [{"backend": "api", "model": "gpt-4o-mini"}]}],
        "pricing": {"litellm_price_files": [str(litellm)]},
    }, {}))


def test_billing_picks_roofline_backend_table_or_litellm_and_says_when_unpriced(tmp_path: Path) -> None:
    billing = _billing(tmp_path)
    usage = {"prompt_tokens": 1000, "completion_tokens": 100}
    mini = billing.price("api", "gpt-4o-mini", usage, None)
    assert mini.source == "api" and mini.cost_usd == pytest.approx((1000 * 0.15 + 100 * 0.6) / 1e6)
    assert billing.price("api", "special", usage, None).cost_usd == pytest.approx((1000 + 200) / 1e6)
    assert billing.price("api", "unknown-model", usage, None).source == "unpriced"
    big = billing.price("gpu", "big", usage, None)
    assert big.source == "roofline" and big.cost_usd > 0
    assert mini.flagship_cost_usd == pytest.approx(big.cost_usd)


def test_models_no_price_covers_are_listed_for_the_startup_warning() -> None:
    settings = parse_settings({
        "backends": [{"name": "api", "kind": "openai", "urls": ["https://b/v1"], "prices": {"special": {"input": 1, "output": 2}}}],
        "models": [{"name": "priced", "targets": [{"backend": "api", "model": "special"}]},
                   {"name": "in-house", "targets": [{"backend": "api"}, {"backend": "api", "model": "special"}]},
                   {"name": "gpt-4o", "targets": [{"backend": "api"}]}],  # in the shipped price table
    }, {})
    assert Pricing(settings).unpriced_targets(settings) == ["in-house -> api/in-house"]


def test_api_models_are_priced_from_the_shipped_table_unless_configured_otherwise(tmp_path: Path) -> None:
    backends = [{"name": "api", "kind": "openai", "urls": ["https://b/v1"]}]
    models = [{"name": "mini", "targets": [{"backend": "api", "model": "gpt-4o-mini"}]}]
    usage = {"prompt_tokens": 1000, "prompt_tokens_details": {"cached_tokens": 400}, "completion_tokens": 100}
    table = price_table()
    shipped = Pricing(parse_settings({"backends": backends, "models": models, "data_dir": str(tmp_path)}, {}))
    priced = shipped.price("api", "gpt-4o-mini", usage, None)
    expected = table.prices["gpt-4o-mini"]
    assert priced.source == "api" and table.as_of
    assert priced.cost_usd == pytest.approx(600 * expected.input + 400 * expected.cached_input + 100 * expected.output)
    configured = Pricing(parse_settings({"backends": backends, "models": models, "data_dir": str(tmp_path),
                                         "pricing": {"prices": {"gpt-4o-mini": {"input": 1, "output": 1}}}}, {}))
    assert configured.price("api", "gpt-4o-mini", usage, None).cost_usd == pytest.approx(1100 / 1e6)
    off = Pricing(parse_settings({"backends": backends, "models": models, "pricing": {"price_table": False}}, {}))
    assert off.price("api", "gpt-4o-mini", usage, None).source == "unpriced"
    # `pricing update` writes a newer table into the data directory: it replaces the shipped one
    (tmp_path / "api_prices.json").write_text(json.dumps({"as_of": "2027-01-01", "source": "test", "models": {
        "gpt-4o-mini": {"input": 10.0, "output": 20.0}}}))
    updated = Pricing(parse_settings({"backends": backends, "models": models, "data_dir": str(tmp_path)}, {}))
    assert updated.price("api", "gpt-4o-mini", usage, None).cost_usd == pytest.approx((1000 * 10 + 100 * 20) / 1e6)


def test_live_load_changes_the_self_hosted_price(tmp_path: Path) -> None:
    billing = _billing(tmp_path)
    usage = {"prompt_tokens": 100, "completion_tokens": 500}
    busy = billing.price("gpu", "big", usage, 128).cost_usd
    quiet = billing.price("gpu", "big", usage, 2).cost_usd
    assert busy < quiet / 5


def test_unknown_catalog_ids_in_config_are_config_errors() -> None:
    from gateway.config import ConfigError

    with pytest.raises(ConfigError, match="unknown GPU"):
        Pricing(parse_settings({"backends": [{"name": "g", "urls": ["http://a/v1"],
                                              "deployment": {"model": "llama-3.1-8b", "gpu": "tpu-v9"}}]}, {}))


def test_the_counterfactual_uses_the_flagship_replicas_own_batch_or_else_the_calls(tmp_path: Path) -> None:
    billing = _billing(tmp_path)
    usage = {"prompt_tokens": 100, "completion_tokens": 500}
    lone_flagship = billing.price("api", "gpt-4o-mini", usage, None, 1)
    busy_flagship = billing.price("api", "gpt-4o-mini", usage, None, 200)
    assert busy_flagship.flagship_cost_usd < lone_flagship.flagship_cost_usd / 10
    cheap = billing.price("gpu", "big", usage, 8, None)  # here the flagship is the call's own backend
    assert cheap.flagship_cost_usd == cheap.cost_usd


def test_an_idle_flagship_is_compared_at_the_batch_the_call_ran_in() -> None:
    """The cheap tier is never dearer than the flagship just because the flagship was idle (its
    configured batch of 16) while the cheap call ran alone."""
    billing = Pricing(parse_settings({
        "backends": [
            {"name": "small", "kind": "vllm", "urls": ["http://s/v1"], "deployment": {"model": "llama-3.1-8b", "gpu": "l40s"}},
            {"name": "large", "kind": "vllm", "urls": ["http://l/v1"],
             "deployment": {"model": "llama-3.1-70b", "gpu": "h100-sxm", "gpus": 4, "running": 16}},
        ],
        "models": [{"name": "cheap", "targets": [{"backend": "small"}]},
                   {"name": "flagship", "tier": "flagship", "targets": [{"backend": "large"}]}],
    }, {}))
    usage = {"prompt_tokens": 23, "completion_tokens": 60}
    for running in (1, 2, 8, 32):
        price = billing.price("small", "cheap", usage, running, None)
        assert price.cost_usd < price.flagship_cost_usd, running
