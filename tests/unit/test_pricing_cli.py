"""`tollgate pricing …` as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

KEYS = {"scenario", "saturated", "ttft_ms", "tpot_ms", "e2e_ms", "output_tok_s", "total_tok_s", "requests_per_s",
        "mean_running", "mean_waiting", "kv_bytes_per_token", "max_concurrency", "critical_batch", "usd_per_1m_input",
        "usd_per_1m_output"}


def tollgate(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gateway", *args], capture_output=True, text=True, timeout=60)


def estimate(*extra: str) -> dict:
    result = tollgate("pricing", "estimate", "--model", "llama-3.1-70b", "--gpu", "h100-sxm", "--gpus", "4",
                      "--input-len", "1000", "--output-len", "200", "--concurrency", "32", "--json", *extra)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_estimate_json_has_the_documented_keys_and_sane_values() -> None:
    figures = estimate("--usd-per-gpu-hour", "2.5")
    assert KEYS <= set(figures)
    assert figures["total_tok_s"] == pytest.approx(figures["output_tok_s"] * 6)
    assert figures["kv_bytes_per_token"] == 327680 and figures["max_concurrency"] > 32
    assert 0 < figures["usd_per_1m_input"] < figures["usd_per_1m_output"]
    assert figures["scenario"] == "closed" and 0 < figures["ttft_ms"]["p50"] <= figures["ttft_ms"]["p95"]
    hours_per_million = 1e6 / (figures["total_tok_s"] * 3600)  # cost per 1M tokens = $/hour / tokens per hour
    assert figures["usd_per_hour"] * hours_per_million == pytest.approx(
        (figures["usd_per_1m_input"] * figures["input_tok_s"] + figures["usd_per_1m_output"] * figures["output_tok_s"])
        / figures["total_tok_s"], rel=1e-6)


def test_the_three_scenarios_and_saturation() -> None:
    """Closed loop (waits for KV room when the clients do not fit), static batch, and open loop
    (p50/p95, saturated once arrivals outpace what the deployment can serve)."""
    def run(*scenario: str) -> dict:
        result = tollgate("pricing", "estimate", "--model", "llama-2-7b", "--gpu", "a100-80gb", "--input-len", "2048",
                          "--output-len", "512", "--json", *scenario)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    fits, crowded = run("--concurrency", "8"), run("--concurrency", "128")
    assert crowded["mean_waiting"] > 10 > fits["mean_waiting"]  # 128 x 2560 tokens do not fit: requests queue
    assert crowded["ttft_ms"]["mean"] > 10 * fits["ttft_ms"]["mean"]
    static = run("--batch", "16")
    assert static["scenario"] == "static" and static["ttft_ms"]["p95"] > static["ttft_ms"]["p50"] > 0
    light = run("--request-rate", "0.5")
    heavy = run("--request-rate", str(2 * crowded["requests_per_s"]))
    assert light["scenario"] == "open" and not light["saturated"] and heavy["saturated"]
    assert light["ttft_ms"]["p95"] >= light["ttft_ms"]["p50"] and heavy["ttft_ms"]["p50"] > 10 * light["ttft_ms"]["p50"]
    both = tollgate("pricing", "estimate", "--model", "llama-2-7b", "--gpu", "a100-80gb", "--input-len", "1",
                    "--output-len", "1", "--batch", "2", "--concurrency", "2")
    assert both.returncode == 2 and "exactly one" in both.stderr


def test_utilization_and_price_scale_the_cost_and_efficiency_can_be_overridden() -> None:
    base = estimate("--usd-per-gpu-hour", "2.0")
    assert estimate("--usd-per-gpu-hour", "2.0", "--utilization", "0.5")["usd_per_1m_output"] == pytest.approx(base["usd_per_1m_output"] * 2)
    slower = estimate("--usd-per-gpu-hour", "2.0", "--efficiency", "bandwidth=0.4")
    assert slower["output_tok_s"] < base["output_tok_s"]


def test_human_output_and_errors() -> None:
    table = tollgate("pricing", "estimate", "--model", "llama-3.2-1b", "--gpu", "l4", "--input-len", "100",
                     "--output-len", "100", "--concurrency", "4")
    assert table.returncode == 0 and "USD per 1M output tokens" in table.stdout
    too_big = tollgate("pricing", "estimate", "--model", "llama-3.1-70b", "--gpu", "a100-80gb", "--precision", "fp16",
                       "--input-len", "10", "--output-len", "10", "--concurrency", "1")
    assert too_big.returncode == 1 and "needs" in too_big.stderr
    unknown = tollgate("pricing", "estimate", "--model", "gpt-9", "--gpu", "h100-sxm", "--input-len", "1",
                       "--output-len", "1", "--concurrency", "1")
    assert unknown.returncode == 2 and "known:" in unknown.stderr
    assert tollgate("pricing", "estimate", "--model", "llama-3.1-8b", "--gpu", "l4", "--input-len", "0",
                    "--output-len", "1", "--concurrency", "1").returncode == 2


def test_catalog_listings_and_plots(tmp_path: Path) -> None:
    gpus = json.loads(tollgate("pricing", "gpus", "--json").stdout)
    assert {"h100-sxm", "mi300x", "l4"} <= {g["id"] for g in gpus}
    assert "mixtral-8x7b" in tollgate("pricing", "models").stdout
    plotted = tollgate("pricing", "plot", "--model", "llama-3.1-8b", "--gpu", "l40s", "--precision", "fp8", "--out", str(tmp_path))
    assert plotted.returncode == 0, plotted.stderr
    for name, label in (("roofline", "arithmetic intensity"), ("cost", "USD per 1M tokens")):
        assert (tmp_path / f"{name}.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
        svg = (tmp_path / f"{name}.svg").read_text()
        assert "<svg" in svg and svg.rstrip().endswith("</svg>") and label in svg  # matplotlib keeps text as text


def test_plan_ranks_deployments_and_apis_and_draws_cost_against_rate(tmp_path: Path) -> None:
    args = ("pricing", "plan", "--model", "llama-3.1-8b", "--rate", "3", "--input-len", "800", "--output-len", "150",
            "--gpu", "l40s", "--gpu", "l4", "--gpus", "1", "--precision", "fp8,int4", "--api", "gpt-4o-mini",
            "--ttft-p95-ms", "800", "--tpot-p95-ms", "60")
    planned = tollgate(*args, "--json", "--plot", str(tmp_path))
    assert planned.returncode == 0, planned.stderr
    result = json.loads(planned.stdout)
    assert result["traffic"]["rate"] == 3 and result["api_prices_as_of"]
    options = result["options"]
    assert [o["usd_per_hour"] for o in options] == sorted(o["usd_per_hour"] for o in options)
    hosted = [o for o in options if o["kind"] == "self-hosted"]
    assert hosted and all(o["ttft_p95_ms"] <= 800 and o["tpot_p95_ms"] <= 60 for o in hosted)
    assert all(set(o["break_even_rps"]) == {"gpt-4o-mini"} for o in hosted)
    assert (tmp_path / "plan.png").stat().st_size > 10_000 and "requests per second" in (tmp_path / "plan.svg").read_text()
    table = tollgate(*args)
    assert table.returncode == 0 and "break-even request rate" in table.stdout and "gpt-4o-mini" in table.stdout
    assert "e-0" not in table.stdout  # plain numbers in tables
    no_rate = tollgate("pricing", "plan", "--model", "llama-3.1-8b")
    assert no_rate.returncode == 2 and "--rate" in no_rate.stderr
    unknown_api = tollgate("pricing", "plan", "--model", "llama-3.1-8b", "--rate", "1", "--api", "no-such-model")
    assert unknown_api.returncode == 2 and "not in the price table" in unknown_api.stderr


def test_the_price_table_ships_and_updates_from_a_litellm_file(tmp_path: Path) -> None:
    shipped = json.loads(tollgate("pricing", "prices", "gpt-4o-mini", "--json").stdout)
    mini = next(row for row in shipped if row["model"] == "gpt-4o-mini")
    assert mini["input"] == pytest.approx(0.15) and mini["output"] == pytest.approx(0.6) and mini["as_of"]
    litellm = {"sample_spec": {"mode": "chat"},
               "gpt-4o-mini": {"mode": "chat", "input_cost_per_token": 2e-7, "output_cost_per_token": 8e-7,
                               "cache_read_input_token_cost": 1e-7, "litellm_provider": "openai"},
               "dall-e-3": {"mode": "image_generation", "input_cost_per_token": 0.0, "output_cost_per_token": 0.0}}
    (tmp_path / "prices.json").write_text(json.dumps(litellm))
    (tmp_path / "tollgate.yaml").write_text(f"data_dir: {tmp_path / 'data'}\n")
    config = ("--config", str(tmp_path / "tollgate.yaml"))
    updated = tollgate("pricing", "update", "--from", str(tmp_path / "prices.json"), "--as-of", "2026-12-01", *config)
    assert updated.returncode == 0, updated.stderr
    assert "1 models as of 2026-12-01" in updated.stdout and "1 with new prices" in updated.stdout
    rows = json.loads(tollgate("pricing", "prices", "--json", *config).stdout)
    assert rows == [{"model": "gpt-4o-mini", "input": 0.2, "output": 0.8, "cached_input": 0.1, "cache_write": None,
                     "as_of": "2026-12-01"}]
    (tmp_path / "bad.json").write_text("[1, 2]")
    assert tollgate("pricing", "update", "--from", str(tmp_path / "bad.json"), *config).returncode == 2
