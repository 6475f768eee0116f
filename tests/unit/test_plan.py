"""The capacity planner: goodput under latency objectives, replicas, cost, break-even against APIs."""

from __future__ import annotations

import math

import pytest

from pricing import catalog, roofline
from pricing.plan import (
    Objectives,
    candidate_deployments,
    goodput,
    plan,
    synthetic_traffic,
    tensor_parallel_ok,
    traffic_from_ledger,
)
from pricing.prices import TokenPrices
from pricing.roofline import Deployment
from pricing.serving import RooflineTiming, open_loop

L40S_FP8 = Deployment(catalog.model("llama-3.1-8b"), catalog.gpu("l40s"), 1, "fp8", "fp8")
TRAFFIC = synthetic_traffic(4.0, 1000, 200, spread=0.5)
API = {"mini": TokenPrices.per_million(0.15, 0.6), "large": TokenPrices.per_million(2.5, 10.0)}


def _record(ts: float, prompt: int, completion: int, status: int = 200, model: str = "cheap") -> dict:
    return {"ts": ts, "status": status, "model": model, "prompt_tokens": prompt, "completion_tokens": completion}


def test_a_ledger_export_gives_the_answered_calls_lengths_and_their_rate() -> None:
    records = [_record(100.0 + 2 * i, 500 + i, 50 + i) for i in range(11)]  # 11 calls over 20 s
    records += [_record(101.0, 9999, 0, status=429), _record(103.0, 7000, 10, model="flagship")]
    traffic = traffic_from_ledger(records, model="cheap")
    assert traffic.rate == pytest.approx(10 / 20)
    assert traffic.mean_input == pytest.approx(505) and traffic.mean_output == pytest.approx(55)
    assert traffic_from_ledger(records).mean_input > 505  # the flagship's call counts without the filter
    with pytest.raises(ValueError, match="at least two answered calls"):
        traffic_from_ledger([_record(1.0, 10, 10)])


def test_synthetic_lengths_have_the_asked_means_and_spread() -> None:
    assert synthetic_traffic(1.0, 800, 100).lengths == ((800, 100),)
    skewed = synthetic_traffic(1.0, 800, 100, spread=0.6, samples=4000)
    assert skewed.mean_input == pytest.approx(800, rel=0.05) and skewed.mean_output == pytest.approx(100, rel=0.05)
    inputs = [i for i, _ in skewed.lengths]
    assert statistics_cv(inputs) == pytest.approx(0.6, rel=0.15)


def statistics_cv(values: list[int]) -> float:
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / len(values)) / mean


def test_goodput_is_the_highest_rate_that_meets_the_objectives() -> None:
    objectives = Objectives(ttft_p95_s=0.5, tpot_p95_s=0.04)
    found = goodput(L40S_FP8, TRAFFIC, objectives)
    assert found is not None
    rate, result = found
    assert objectives.met_by(result)
    timing, capacity = RooflineTiming(L40S_FP8), roofline.kv_capacity_tokens(L40S_FP8)
    beyond = open_loop(timing, capacity, TRAFFIC.lengths, rate * 1.1, requests=400)
    assert not objectives.met_by(beyond), "10% more traffic breaks an objective"
    looser = goodput(L40S_FP8, TRAFFIC, Objectives(ttft_p95_s=2.0, tpot_p95_s=0.08))
    assert looser is not None and looser[0] > rate
    # a decode step alone is slower than the objective: no rate meets it
    assert goodput(L40S_FP8, TRAFFIC, Objectives(ttft_p95_s=2.0, tpot_p95_s=0.005)) is None


def test_the_plan_lists_what_meets_the_objectives_cheapest_first_with_replicas_and_break_even() -> None:
    model = catalog.model("llama-3.1-8b")
    gpus = [catalog.gpu(g) for g in ("l40s", "l4", "h100-sxm")]
    deployments = candidate_deployments(model, gpus, [1, 2], ["fp8", "int4"], 2048)
    objectives = Objectives(ttft_p95_s=1.0, tpot_p95_s=0.05)
    busy = TRAFFIC.with_rate(20.0)
    options = plan(busy, objectives, deployments, API, top=len(deployments))
    costs = [o.usd_per_hour for o in options]
    assert costs == sorted(costs)
    hosted = [o for o in options if o.kind == "self-hosted"]
    assert hosted and {o.name for o in options if o.kind == "api"} == {"mini", "large"}
    for option in hosted:
        assert option.goodput_rps is not None and option.replica_usd_per_hour is not None
        assert option.replicas == math.ceil(busy.rate / option.goodput_rps)
        assert option.usd_per_hour == pytest.approx(option.replicas * option.replica_usd_per_hour)
        assert 0 < option.utilization <= 1 and option.ttft_p95_ms <= 1000 and option.tpot_p95_ms <= 50
        tokens_cost = (option.usd_per_1m_input * busy.mean_input + option.usd_per_1m_output * busy.mean_output) / 1e6
        assert tokens_cost * busy.rate * 3600 == pytest.approx(option.usd_per_hour)  # $/h / tokens per hour
        mini = option.break_even_rps["mini"]
        if mini is not None:  # at break-even, one replica costs what the API would for the same requests
            per_request = busy.mean_input * API["mini"].input + busy.mean_output * API["mini"].output
            assert mini * 3600 * per_request == pytest.approx(option.replica_usd_per_hour)
            assert mini <= option.goodput_rps
    # pruning by the lower bound finds the same cheapest few as evaluating everything
    top3 = [o.name for o in plan(busy, objectives, deployments, API, top=3) if o.kind == "self-hosted"]
    assert top3 == [o.name for o in hosted[:3]]
    # objectives nothing meets: only the APIs are left
    assert all(o.kind == "api" for o in plan(busy, Objectives(0.01, 0.001), deployments, API))


def test_candidates_respect_memory_and_tensor_parallel_splits() -> None:
    seventy = catalog.model("llama-3.1-70b")
    found = candidate_deployments(seventy, [catalog.gpu("l4"), catalog.gpu("h100-sxm")], [1, 2, 3, 4], ["bf16"], 4096)
    # 141 GB of weights: not in 2 x 80 GB beside the engine's reserve; 3 GPUs cannot split 64 heads
    assert {(d.gpu.id, d.gpus) for d in found} == {("h100-sxm", 4)}
    assert not tensor_parallel_ok(seventy, 3)
