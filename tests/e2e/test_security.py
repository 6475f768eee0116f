"""Security checks: keys never in logs, header and body limits, CORS closed, isolation, provider keys hidden."""

from __future__ import annotations

import json
import socket
import time

import httpx
import pytest

from tests.support.stack import new_tenant_key


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


@pytest.fixture(scope="module")
def guarded_gateway(tmp_path_factory: pytest.TempPathFactory, sims: dict[str, str], valkey: str):  # type: ignore[no-untyped-def]
    """A gateway with short header and keep-alive deadlines and a small connection cap."""
    from tests.support.processes import start_gateway, stop
    from tests.support.stack import ADMIN_KEY, gateway_config

    workdir = tmp_path_factory.mktemp("guarded")
    config = workdir / "tollgate.yaml"
    config.write_text(gateway_config(sims, valkey, header_timeout_s=1, keepalive_timeout_s=1, max_connections=20))
    process, base = start_gateway(config, {"TEST_ADMIN_KEY": ADMIN_KEY}, workdir)
    yield base
    stop(process)


def _address(base: str) -> tuple[str, int]:
    host, port = base.removeprefix("http://").split(":")
    return host, int(port)


def _closed(sock: socket.socket, within_s: float) -> bool:
    sock.settimeout(within_s)
    try:
        while sock.recv(4096):
            pass
        return True
    except (TimeoutError, ConnectionError):
        return False


def test_slow_headers_and_idle_connections_are_closed(guarded_gateway: str) -> None:
    idle = [socket.create_connection(_address(guarded_gateway)) for _ in range(8)]
    slow = [socket.create_connection(_address(guarded_gateway)) for _ in range(8)]
    started = time.monotonic()
    for sock in slow:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")
    while time.monotonic() - started < 0.8:  # one header byte at a time: never finishing
        for sock in slow:
            sock.sendall(b"X")
        time.sleep(0.2)
    assert all(_closed(sock, 3.0) for sock in idle + slow)
    assert time.monotonic() - started < 5
    assert httpx.get(guarded_gateway + "/healthz").status_code == 200


def test_a_keep_alive_connection_left_idle_is_closed(guarded_gateway: str) -> None:
    sock = socket.create_connection(_address(guarded_gateway))
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    sock.settimeout(3)
    assert b"200 OK" in sock.recv(4096)
    assert _closed(sock, 3.0)


def test_past_the_connection_cap_new_requests_get_503(guarded_gateway: str) -> None:
    held = [socket.create_connection(_address(guarded_gateway)) for _ in range(24)]
    time.sleep(0.2)
    assert httpx.get(guarded_gateway + "/healthz").status_code == 503
    for sock in held:
        sock.close()
    time.sleep(1.5)
    assert httpx.get(guarded_gateway + "/healthz").status_code == 200


def test_an_http_1_0_client_gets_its_stream_without_chunked_encoding(gateway: str, tenant_key: str) -> None:
    body = json.dumps({"model": "cheap", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5,
                       "stream": True}).encode()
    with socket.create_connection(_address(gateway)) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.0\r\nContent-Type: application/json\r\n"
                     + f"Authorization: Bearer {tenant_key}\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
        sock.settimeout(10)
        received = b""
        while chunk := sock.recv(65536):  # the body ends when the server closes the connection
            received += chunk
    head, _, payload = received.partition(b"\r\n\r\n")
    assert b" 200 " in head.split(b"\r\n")[0] and b"transfer-encoding" not in head.lower()
    assert payload.startswith(b"data: {") and payload.rstrip().endswith(b"data: [DONE]")


def test_a_wrong_method_is_405_with_allow(gateway: str) -> None:
    response = httpx.get(gateway + "/v1/chat/completions")
    assert response.status_code == 405 and response.headers["allow"] == "POST"
    assert response.json()["error"]["code"] == "method_not_allowed"


def test_the_openapi_document_lists_the_error_answers_and_query_parameters(gateway: str) -> None:
    document = httpx.get(gateway + "/openapi.json").json()
    chat = document["paths"]["/v1/chat/completions"]["post"]["responses"]
    assert {"400", "401", "404", "413", "429", "502", "504"} <= set(chat)
    ledger = document["paths"]["/v1/ledger"]["get"]
    assert {p["name"] for p in ledger["parameters"]} >= {"tenant", "limit", "after", "from", "to"}
    report = document["paths"]["/v1/reports/costs"]["get"]
    assert {p["name"] for p in report["parameters"]} >= {"group_by", "format", "from", "to", "since", "tenant"}


@pytest.mark.parametrize("path, params", [
    ("/v1/ledger", {"from": "1" * 400}), ("/v1/reports/costs", {"to": "0001-01-03", "since": "7d"}),
    ("/v1/ledger", {"from": "0001-01-01T00:00:00+14:00"}), ("/v1/reports/costs", {"from": "0001-01-01T00:00:00+14:00"}),
    ("/v1/ledger", {"after": "99999999999999999999999-1"}), ("/v1/ledger", {"limit": "9" * 50}),
    ("/v1/ledger", {"to": "nan"}), ("/v1/reports/costs", {"since": "9999w"}), ("/admin/router/labels", {"after": "1-" + "9" * 30}),
])
def test_hostile_query_strings_get_a_400_naming_the_parameter(gateway: str, path: str, params: dict) -> None:
    from tests.support.stack import ADMIN_KEY

    response = httpx.get(gateway + path, params={"tenant": "acme", **params}, headers={"authorization": f"Bearer {ADMIN_KEY}"})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] in params


def test_a_body_nested_too_deep_is_a_400_and_is_recorded(gateway: str) -> None:
    from tests.support.stack import new_tenant_key

    key = new_tenant_key(gateway, "deep-json")
    deep = "[" * 300 + "]" * 300
    for depth_body in (deep, "[" * 2000 + "]" * 2000):
        raw = '{"model": "cheap", "messages": [{"role": "user", "content": "hi"}], "metadata": {"x": ' + depth_body + "}}"
        response = httpx.post(gateway + "/v1/chat/completions", content=raw, headers={"authorization": f"Bearer {key}",
                                                                                      "content-type": "application/json"})
        assert response.status_code == 400 and response.json()["error"]["code"] in ("nesting_too_deep", "invalid_json")
    time.sleep(0.3)
    records = httpx.get(gateway + "/v1/ledger", headers={"authorization": f"Bearer {key}"}).json()["data"]
    assert len(records) == 2 and {r["status"] for r in records} == {400}


def test_backend_addresses_and_credentials_never_reach_tenants_or_logs(gateway: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    from tests.support.stack import ADMIN_KEY

    key = new_tenant_key(gateway, "addresses")
    headers = {"authorization": f"Bearer {key}"}
    failed = httpx.post(gateway + "/v1/chat/completions", headers=headers,
                        json={"model": "unreachable", "messages": [{"role": "user", "content": "hi"}]})
    assert failed.status_code == 502 and "127.0.0.1" not in failed.text and "all-dead" in failed.text
    answered = httpx.post(gateway + "/v1/chat/completions", headers=headers,  # its first backend's URL has a password
                          json={"model": "behind-credentials", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2})
    assert answered.status_code == 200
    time.sleep(0.3)
    seen_by_tenant = httpx.get(gateway + "/v1/ledger", headers=headers).text
    seen_by_admin = httpx.get(gateway + "/v1/ledger", params={"tenant": "addresses"},
                              headers={"authorization": f"Bearer {ADMIN_KEY}"}).json()["data"]
    assert "127.0.0.1" not in seen_by_tenant and "hunter2" not in seen_by_tenant
    assert all(r["replica"].startswith("http://127.0.0.1:") for r in seen_by_admin if r["status"] == 200)
    logs = "".join(log.read_text(errors="replace") for log in tmp_path_factory.getbasetemp().rglob("gateway-*.log"))
    assert "ops:hunter2" not in logs and "hunter2@" not in logs
