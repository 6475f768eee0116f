"""Health, readiness and Prometheus metrics, of the gateway and of the engine simulator."""

from __future__ import annotations

import httpx
import openai

from tests.support.stack import METRICS_KEY, gateway_metrics


def test_healthz_and_readyz(gateway: str) -> None:
    assert httpx.get(gateway + "/healthz").json() == {"status": "ok"}
    ready = httpx.get(gateway + "/readyz")
    assert ready.status_code == 200
    body = ready.json()
    assert body["redis"] is True and body["backends"]["small"] is True and body["backends"]["all-dead"] is False


def test_gateway_metrics_count_requests_and_tokens(gateway: str, client: openai.OpenAI) -> None:
    client.chat.completions.create(model="cheap", messages=[{"role": "user", "content": "count me"}], max_tokens=3)
    text = gateway_metrics(gateway)
    assert 'tollgate_requests_total{endpoint="chat",model="cheap",route="direct",status="200",tenant="acme"}' in text
    assert 'tollgate_tokens_total{kind="completion",model="cheap",tenant="acme"}' in text
    assert "tollgate_overhead_seconds_bucket" in text


def test_metrics_need_the_metrics_key_or_an_admin_key(gateway: str, tenant_key: str) -> None:
    """They name every tenant's spend."""
    assert httpx.get(gateway + "/metrics").status_code == 401
    assert httpx.get(gateway + "/metrics", headers={"authorization": f"Bearer {tenant_key}"}).status_code == 403
    assert httpx.get(gateway + "/metrics", headers={"authorization": "Bearer wrong-metrics-key"}).status_code == 401
    scraped = httpx.get(gateway + "/metrics", headers={"authorization": f"Bearer {METRICS_KEY}"})
    assert scraped.status_code == 200 and "tollgate_requests_total" in scraped.text


def test_simulator_exposes_vllm_metric_names(sims: dict[str, str], client: openai.OpenAI) -> None:
    client.chat.completions.create(model="flagship", messages=[{"role": "user", "content": "metrics"}], max_tokens=3)
    text = httpx.get(sims["large"] + "/metrics").text
    for name in ("vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:gpu_cache_usage_perc",
                 "vllm:prompt_tokens_total", "vllm:generation_tokens_total"):
        assert f'{name}{{model_name="sim-large"}}' in text
    generated = next(line for line in text.splitlines() if line.startswith("vllm:generation_tokens_total"))
    assert float(generated.split()[-1]) >= 3
