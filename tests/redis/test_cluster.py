"""The gateway on a real three-node Valkey Cluster: everything a call touches shares a hash slot."""

from __future__ import annotations

import textwrap
import time
from collections.abc import Iterator

import httpx
import openai
import pytest

from tests.support.processes import start_gateway, stop
from tests.support.stack import ADMIN_KEY
from tests.support.valkey_cluster import valkey_cluster

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def cluster_gateway(tmp_path_factory: pytest.TempPathFactory, sims: dict[str, str]) -> Iterator[str]:
    workdir = tmp_path_factory.mktemp("cluster")
    with valkey_cluster(workdir) as ports:
        config = workdir / "tollgate.yaml"
        config.write_text(textwrap.dedent(f"""
            redis_url: redis+cluster://127.0.0.1:{ports[0]}
            auth: {{admin_key: "{ADMIN_KEY}", key_hash_secret: cluster-secret}}
            backends:
              - {{name: small, kind: vllm, urls: ["{sims['small']}/v1"], deployment: {{model: llama-3.1-8b, gpu: l40s}}}}
              - {{name: pair, kind: vllm, urls: ["{sims['pair_a']}/v1", "{sims['pair_b']}/v1"]}}
            models:
              - {{name: cheap, targets: [{{backend: small, model: sim-small}}]}}
              - {{name: pair, targets: [{{backend: pair, model: sim-pair}}]}}
        """))
        process, base = start_gateway(config, {}, workdir)
        yield base
        stop(process)


def test_keys_limits_calls_cache_ledger_and_reports_work_on_a_cluster(cluster_gateway: str) -> None:
    base = cluster_gateway
    assert httpx.get(base + "/readyz", timeout=10).json()["redis"] is True
    with httpx.Client(base_url=base, headers={"authorization": f"Bearer {ADMIN_KEY}"}, timeout=10) as api:
        for tenant in ("c-one", "c-two"):  # tenants hash to different slots
            assert api.post("/admin/tenants", json={"id": tenant}).status_code == 201
        keys = [api.post("/admin/keys", json={"tenant": t}).json()["key"] for t in ("c-one", "c-two")]
        assert api.put("/admin/tenants/c-one/limits", json={"tenant": {"rpm": 1000, "daily_usd": 5}}).status_code == 200
        assert api.put("/admin/router/thresholds", json={"threshold": 0.4}).status_code == 200
    time.sleep(0.6)
    client = openai.OpenAI(base_url=base + "/v1", api_key=keys[0], max_retries=0, timeout=30)
    deterministic = dict(model="cheap", messages=[{"role": "user", "content": "cluster?"}], temperature=0, max_tokens=4)
    first = client.chat.completions.with_raw_response.create(**deterministic)
    second = client.chat.completions.with_raw_response.create(**deterministic)
    assert first.headers["x-ratelimit-limit-requests"] == "1000" and second.headers["x-tollgate-cache"] == "hit"
    assert "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(
        model="cheap", messages=[{"role": "user", "content": "stream"}], max_tokens=4, stream=True) if c.choices)
    for turn in range(2):
        client.chat.completions.create(model="pair", messages=[{"role": "system", "content": "shared " * 200},
                                                               {"role": "user", "content": f"turn {turn}"}], max_tokens=2)
    time.sleep(0.5)
    headers = {"authorization": f"Bearer {keys[0]}"}
    records = httpx.get(base + "/v1/ledger", headers=headers, timeout=10).json()["data"]
    assert len(records) == 5 and {r["cache"] for r in records} == {"none", "exact"}
    totals = httpx.get(base + "/v1/reports/costs", headers=headers, timeout=10).json()["totals"]
    assert totals["requests"] == 5 and totals["cache_hits"] == 1
    everyone = httpx.get(base + "/v1/reports/costs", headers={"authorization": f"Bearer {ADMIN_KEY}"}, timeout=10).json()
    assert everyone["totals"]["requests"] == 5
    other = openai.OpenAI(base_url=base + "/v1", api_key=keys[1], max_retries=0, timeout=30)
    assert other.chat.completions.with_raw_response.create(**deterministic).headers["x-tollgate-cache"] == "miss"
