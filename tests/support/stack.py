"""The test stack's configuration and the helpers tests use to drive a running gateway."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import httpx

from tests.support.processes import GATEWAY_PATH_ENV, free_port

ADMIN_KEY = "test-admin-key-0123456789"
METRICS_KEY = "test-metrics-key-0123456789"


def gateway_config(sims: dict[str, str], redis_url: str, **server: object) -> str:
    """The test stack's config; ``server`` adds settings to its ``server`` block."""
    dead = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens here: connection refused
    settings = {"max_body_bytes": 65536, "max_attempts": 3, **server}
    if not os.environ.get(GATEWAY_PATH_ENV):  # an earlier checkout's gateway may not know it
        settings["metrics_key"] = METRICS_KEY
    server_block = ", ".join(f"{name}: {value}" for name, value in settings.items())
    return textwrap.dedent(f"""
        redis_url: {redis_url}
        server: {{{server_block}}}
        auth:
          admin_key: ${{TEST_ADMIN_KEY}}
          key_hash_secret: ${{TEST_KEY_SECRET:-test-secret-for-hashing}}
        backends:
          - {{name: small, kind: vllm, urls: ["{sims['small']}/v1"],
             deployment: {{model: llama-3.1-8b, gpu: l40s, precision: fp8, usd_per_gpu_hour: 1.2}}}}
          - {{name: large, kind: vllm, urls: ["{sims['large']}/v1"],
             deployment: {{model: llama-3.1-70b, gpu: h100-sxm, gpus: 4, usd_per_gpu_hour: 2.5}}}}
          - {{name: api, kind: openai, urls: ["{sims['small']}/v1"],
             prices: {{sim-small: {{input: 1.0, output: 3.0, cached_input: 0.5, as_of: "2026-11-01"}}}}}}
          - {{name: flaky, kind: vllm, urls: ["{sims['flaky']}/v1"], read_timeout_s: 2}}
          - {{name: dead-then-small, kind: vllm, urls: ["{dead}", "{sims['small']}/v1"]}}
          - {{name: all-dead, kind: vllm, urls: ["{dead}"]}}
          - {{name: creds-dead, kind: vllm, urls: ["{dead.replace("http://", "http://ops:hunter2@")}"]}}
          - {{name: slow, kind: vllm, urls: ["{sims['slow']}/v1"]}}
          - {{name: pair, kind: vllm, urls: ["{sims['pair_a']}/v1", "{sims['pair_b']}/v1"]}}
          - {{name: pricey, kind: openai, urls: ["{sims['small']}/v1"],
             prices: {{sim-small: {{input: 1000.0, output: 1000.0}}}}}}
        models:
          - {{name: cheap, tier: cheap, targets: [{{backend: small, model: sim-small}}]}}
          - {{name: flagship, tier: flagship, targets: [{{backend: large, model: sim-large}}]}}
          - {{name: flaky-with-fallback, targets: [{{backend: flaky, model: sim-flaky}}, {{backend: small, model: sim-small}}]}}
          - {{name: flaky-only, targets: [{{backend: flaky, model: sim-flaky}}]}}
          - {{name: replica-failover, targets: [{{backend: dead-then-small, model: sim-small}}]}}
          - {{name: unreachable, targets: [{{backend: all-dead, model: sim-small}}]}}
          - {{name: behind-credentials, targets: [{{backend: creds-dead, model: sim-small}}, {{backend: small, model: sim-small}}]}}
          - {{name: slow, targets: [{{backend: slow, model: sim-slow}}]}}
          - {{name: api-priced, targets: [{{backend: api, model: sim-small}}]}}
          - {{name: pair, targets: [{{backend: pair, model: sim-pair}}]}}
          - {{name: pricey, targets: [{{backend: pricey, model: sim-small}}]}}  # $0.001 a token
    """)


def train_test_router(path: Path) -> Path:
    from router.train import fit
    from tests.support.router_data import synthetic_examples

    fit(synthetic_examples(600)).save(path)
    return path


def admin(gateway: str) -> httpx.Client:
    return httpx.Client(base_url=gateway, headers={"authorization": f"Bearer {ADMIN_KEY}"}, timeout=10)


def new_tenant_key(gateway: str, tenant: str) -> str:
    with admin(gateway) as client:
        client.post("/admin/tenants", json={"id": tenant})
        created = client.post("/admin/keys", json={"tenant": tenant, "name": "test"})
        assert created.status_code == 201, created.text
        return created.json()["key"]


def last_request(sims: dict[str, str], name: str) -> dict:
    return httpx.get(sims[name] + "/sim/last_request", timeout=5).json()


def gateway_metrics(base: str) -> str:
    """The gateway's Prometheus exposition (it needs the metrics key or an admin key)."""
    response = httpx.get(base + "/metrics", headers={"authorization": f"Bearer {ADMIN_KEY}"}, timeout=10)
    assert response.status_code == 200, response.text
    return response.text
