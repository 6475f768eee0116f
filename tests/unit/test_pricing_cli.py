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
    for name in ("roofline.svg", "cost.svg"):
        svg = (tmp_path / name).read_text()
        assert svg.startswith("<svg") and "<polyline" in svg and svg.rstrip().endswith("</svg>")
