"""Every bad input gets a 4xx with OpenAI's error shape: never a 500, a traceback, or a hang."""

from __future__ import annotations

import httpx
import openai
import pytest

GOOD = {"model": "cheap", "messages": [{"role": "user", "content": "hi"}]}


def _post(gateway: str, key: str | None, body: bytes | dict, path: str = "/v1/chat/completions") -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    if isinstance(body, dict):
        return httpx.post(gateway + path, json=body, headers=headers, timeout=10)
    return httpx.post(gateway + path, content=body, headers={**headers, "content-type": "application/json"}, timeout=10)


def _assert_openai_error(response: httpx.Response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"] and "Traceback" not in error["message"]
    if code:
        assert error["code"] == code
    assert response.headers.get("x-request-id")
    return error


@pytest.mark.parametrize("raw", [b"{not json", b"", b"[1, 2]", b'"text"', b"\xff\xfe"])
def test_malformed_json_is_400(gateway: str, tenant_key: str, raw: bytes) -> None:
    _assert_openai_error(_post(gateway, tenant_key, raw), 400)


@pytest.mark.parametrize(
    "body, param",
    [
        ({"model": "cheap"}, "messages"),
        ({"messages": [{"role": "user", "content": "hi"}]}, "model"),
        ({**GOOD, "messages": []}, "messages"),
        ({**GOOD, "messages": "hello"}, "messages"),
        ({**GOOD, "messages": [{"role": "wizard", "content": "hi"}]}, "messages.0.role"),
        ({**GOOD, "temperature": "hot"}, "temperature"),
        ({**GOOD, "temperature": 3}, "temperature"),
        ({**GOOD, "max_tokens": 0}, "max_tokens"),
        ({**GOOD, "stream": "yes please"}, "stream"),
        ({**GOOD, "top_logprobs": 50}, "top_logprobs"),
        ({**GOOD, "stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ],
)
def test_missing_or_wrong_typed_fields_are_400_naming_the_field(gateway: str, tenant_key: str, body: dict, param: str) -> None:
    error = _assert_openai_error(_post(gateway, tenant_key, body), 400, "invalid_value")
    assert error["param"] == param


def test_completions_needs_a_prompt(gateway: str, tenant_key: str) -> None:
    error = _assert_openai_error(_post(gateway, tenant_key, {"model": "cheap"}, "/v1/completions"), 400)
    assert error["param"] == "prompt"


@pytest.mark.parametrize("body, param", [
    ({"model": "cheap", "prompt": "x", "best_of": 72793}, "best_of"),  # the engine would hold 72,793 answers
    ({"model": "cheap", "prompt": "x", "n": 3, "best_of": 2}, "best_of"),
    ({"model": "cheap", "prompt": ["x"] * 100, "n": 3}, "n"),  # 300 completions in one request
])
def test_requests_for_too_many_completions_are_400(gateway: str, tenant_key: str, body: dict, param: str) -> None:
    error = _assert_openai_error(_post(gateway, tenant_key, body, "/v1/completions"), 400, "invalid_value")
    assert error["param"] == param


def test_unknown_model_is_404(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="gpt-9", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.body["code"] == "model_not_found"


def test_body_over_the_limit_is_413(gateway: str, tenant_key: str) -> None:
    huge = {**GOOD, "messages": [{"role": "user", "content": "x" * 70_000}]}
    _assert_openai_error(_post(gateway, tenant_key, huge), 413, "request_too_large")


def test_body_over_the_limit_without_content_length_is_413(gateway: str, tenant_key: str) -> None:
    def chunks():
        yield b'{"model": "cheap", "messages": [{"role": "user", "content": "'
        for _ in range(100):
            yield b"y" * 1000
        yield b'"}]}'

    response = httpx.post(gateway + "/v1/chat/completions", content=chunks(),
                          headers={"authorization": f"Bearer {tenant_key}"}, timeout=10)
    _assert_openai_error(response, 413, "request_too_large")


@pytest.mark.parametrize("key", [None, "sk-wrong", "sk-tg-aaaaaaaaaaaa.bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"])
def test_missing_or_bad_key_is_401(gateway: str, key: str | None) -> None:
    _assert_openai_error(_post(gateway, key, GOOD), 401, "invalid_api_key")


def test_bad_key_through_the_sdk_is_authentication_error(gateway: str) -> None:
    client = openai.OpenAI(base_url=gateway + "/v1", api_key="sk-nope", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(model="cheap", messages=[{"role": "user", "content": "hi"}])


def test_tenant_key_cannot_use_admin_api(gateway: str, tenant_key: str) -> None:
    response = httpx.get(gateway + "/admin/tenants", headers={"authorization": f"Bearer {tenant_key}"})
    _assert_openai_error(response, 403, "admin_required")


def test_unknown_route_and_wrong_method_are_openai_errors(gateway: str, tenant_key: str) -> None:
    _assert_openai_error(httpx.get(gateway + "/v1/nothing-here"), 404, "not_found")
    _assert_openai_error(httpx.get(gateway + "/v1/chat/completions"), 405, "method_not_allowed")


def test_admin_api_rejects_bad_bodies_with_400(gateway: str) -> None:
    from tests.support.stack import admin

    with admin(gateway) as client:
        _assert_openai_error(client.post("/admin/tenants", json={"id": "Bad Id!"}), 400)
        _assert_openai_error(client.post("/admin/tenants", json={"name": "no id"}), 400)
        _assert_openai_error(client.post("/admin/keys", json={"tenant": "no-such-tenant"}), 404, "tenant_not_found")
        _assert_openai_error(client.post("/admin/keys", content=b"{oops", headers={"content-type": "application/json"}), 400)
        _assert_openai_error(client.delete("/admin/keys/doesnotexist"), 404, "key_not_found")
