"""Security checks: keys never in logs, header and body limits, CORS closed, isolation, provider keys hidden."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.conftest import new_tenant_key


def test_keys_never_appear_in_the_gateway_log(gateway: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    key = new_tenant_key(gateway, "log-check")
    headers = {"authorization": f"Bearer {key}"}
    httpx.post(gateway + "/v1/chat/completions", headers=headers, json={"model": "cheap", "messages": [{"role": "user", "content": "hi"}]})
    httpx.post(gateway + "/v1/chat/completions", headers=headers, json={"model": "unreachable", "messages": [{"role": "user", "content": "hi"}]})
    wrong = key[:-4] + "abcd"
    httpx.get(gateway + "/v1/models", headers={"authorization": f"Bearer {wrong}"})
    time.sleep(0.3)
    logs = list(tmp_path_factory.getbasetemp().rglob("gateway-*.log"))
    assert logs
    secret = key.split(".", 1)[1]
    for log in logs:
        text = log.read_text(errors="replace")
        assert secret not in text and wrong.split(".", 1)[1] not in text, log


def test_oversized_headers_and_bodies_are_refused(gateway: str, tenant_key: str) -> None:
    big_header = httpx.get(gateway + "/v1/models", headers={"authorization": f"Bearer {tenant_key}", "x-junk": "a" * 100_000})
    assert big_header.status_code == 431 and big_header.json()["error"]["code"] == "headers_too_large"
    big_body = httpx.post(gateway + "/v1/chat/completions", headers={"authorization": f"Bearer {tenant_key}"},
                          content=b'{"model": "cheap", "messages": [{"role": "user", "content": "' + b"a" * 200_000 + b'"}]}')
    assert big_body.status_code == 413


def test_cors_is_closed_by_default(gateway: str) -> None:
    preflight = httpx.options(gateway + "/v1/chat/completions",
                              headers={"origin": "https://elsewhere.example", "access-control-request-method": "POST"})
    assert "access-control-allow-origin" not in preflight.headers
    simple = httpx.get(gateway + "/v1/models", headers={"origin": "https://elsewhere.example"})
    assert "access-control-allow-origin" not in simple.headers


def test_tenant_keys_cannot_reach_admin_endpoints(gateway: str, tenant_key: str) -> None:
    headers = {"authorization": f"Bearer {tenant_key}"}
    for method, path in (("GET", "/admin/tenants"), ("POST", "/admin/keys"), ("GET", "/admin/router/thresholds"),
                         ("PUT", "/admin/tenants/acme/moderation"), ("GET", "/admin/router/labels")):
        assert httpx.request(method, gateway + path, headers=headers, json={}).status_code == 403, path


def test_upstream_errors_never_echo_the_providers_key() -> None:
    from types import SimpleNamespace

    import orjson

    from gateway.config import BackendConfig
    from gateway.proxy import upstream_rejection
    from gateway.upstream import Attempt, Backend, Replica, Target

    secret = "sk-provider-0123456789abcdef"
    backend = Backend(BackendConfig(name="openai", kind="openai", urls=["https://api.example/v1"], api_key=secret))

    def rejection(status: int, message: str):
        attempt = Attempt(SimpleNamespace(status=status), Target(backend, "gpt"), Replica("https://api.example/v1"))
        return upstream_rejection(attempt, orjson.dumps({"error": {"message": message, "code": "bad"}}))

    echoed = rejection(400, f"Incorrect API key provided: {secret}")
    assert secret not in echoed.message and "***" in echoed.message and echoed.status == 400
    refused = rejection(401, f"invalid key {secret}")
    assert refused.status == 502 and secret not in refused.message and refused.code == "upstream_auth_failed"


def test_key_hashes_are_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    import hmac

    from gateway import keys

    seen = []
    real = hmac.compare_digest
    monkeypatch.setattr(keys.hmac, "compare_digest", lambda a, b: seen.append((a, b)) or real(a, b))
    assert keys.hashes_match("abc", "abc") and not keys.hashes_match("abc", "abd")
    assert len(seen) == 2  # every comparison goes through hmac.compare_digest
