"""Every call leaves one ledger record, and the reports API, CLI and ledger agree with each other."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
import pytest

from tests.support.stack import ADMIN_KEY, admin, gateway_metrics, new_tenant_key

MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]


def _ledger(gateway: str, key: str, expected: int, timeout_s: float = 5.0) -> list[dict]:
    """The tenant's records, waiting for stream ends (recorded just after the last byte) to land."""
    deadline = time.monotonic() + timeout_s
    while True:
        page = httpx.get(gateway + "/v1/ledger", params={"limit": 1000}, headers={"authorization": f"Bearer {key}"}).json()
        if len(page["data"]) >= expected or time.monotonic() > deadline:
            return page["data"]
        time.sleep(0.1)


def _report(gateway: str, key: str, **params: str) -> httpx.Response:
    return httpx.get(gateway + "/v1/reports/costs", params=params, headers={"authorization": f"Bearer {key}"})


@pytest.fixture(scope="module")
def traffic(gateway: str) -> tuple[str, list[dict]]:
    """One tenant's mixed traffic: answered, streamed, routed, cut short, invalid, failed and refused."""
    key = new_tenant_key(gateway, "ledger-tenant")
    client = openai.OpenAI(base_url=gateway + "/v1", api_key=key, max_retries=0, timeout=30)
    client.chat.completions.create(model="cheap", messages=MESSAGES, max_tokens=5)
    client.chat.completions.create(model="auto", messages=MESSAGES, max_tokens=5)
    list(client.chat.completions.create(model="flagship", messages=MESSAGES, max_tokens=5, stream=True))
    with httpx.stream("POST", gateway + "/v1/chat/completions", headers={"authorization": f"Bearer {key}"}, timeout=10,
                      json={"model": "slow", "messages": [{"role": "user", "content": "a long story"}],
                            "stream": True, "max_tokens": 200}) as response:
        for index, _ in enumerate(response.iter_lines()):
            if index >= 6:
                break  # hang up mid-stream
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="cheap", messages=MESSAGES, temperature=9)
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="no-such-model", messages=MESSAGES)
    with pytest.raises(openai.APIStatusError):
        client.chat.completions.create(model="unreachable", messages=MESSAGES, max_tokens=3)
    with admin(gateway) as api:
        api.put("/admin/tenants/ledger-tenant/limits", json={"tenant": {"tpm": 10}})
    time.sleep(0.6)
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="cheap", messages=MESSAGES, max_tokens=50)
    with admin(gateway) as api:
        api.put("/admin/tenants/ledger-tenant/limits", json={"tenant": {"tpm": None}})
    return key, _ledger(gateway, key, expected=8)


def test_every_call_leaves_exactly_one_record(traffic: tuple[str, list[dict]]) -> None:
    _, records = traffic
    assert len(records) == 8 and len({r["request_id"] for r in records}) == 8
    by_outcome = {(r["requested_model"], r["status"], r["error_code"]) for r in records}
    assert {("cheap", 200, None), ("auto", 200, None), ("flagship", 200, None), ("slow", 200, "client_disconnected"),
            ("cheap", 400, "invalid_value"), ("no-such-model", 404, "model_not_found"),
            ("cheap", 429, "rate_limit_exceeded")} <= by_outcome
    assert any(r["requested_model"] == "unreachable" and r["status"] >= 500 for r in records)


def test_records_carry_tokens_costs_routing_and_timing(traffic: tuple[str, list[dict]]) -> None:
    _, records = traffic
    answered = {r["requested_model"]: r for r in records if r["status"] == 200}
    cheap = answered["cheap"]
    assert cheap["model"] == "cheap" and cheap["models"] == ["cheap"] and cheap["backend"] == "small"
    assert cheap["completion_tokens"] == 5 and cheap["prompt_tokens"] > 0 and cheap["cost_usd"] > 0
    assert cheap["flagship_cost_usd"] > cheap["cost_usd"] and cheap["cost_source"] == "roofline"
    assert cheap["latency_ms"] > 0 and "replica" not in cheap  # a tenant never sees internal addresses
    routed = answered["auto"]
    assert routed["route"] == "router" and 0 <= routed["router_score"] <= 1 and routed["router_threshold"] == 0.5
    streamed = answered["flagship"]
    assert streamed["stream"] is True and streamed["ttft_ms"] > 0 and streamed["cost_usd"] > 0
    cut = answered["slow"]  # billed for what was generated before the client hung up
    assert 0 < cut["completion_tokens"] < 200 and cut["cost_usd"] >= 0 and cut["usage_estimated"] is True


def test_prometheus_sees_routes_and_time_to_first_token(gateway: str, traffic: tuple[str, list[dict]]) -> None:
    metrics = gateway_metrics(gateway)
    assert 'route="router",status="200",tenant="ledger-tenant"' in metrics
    assert 'tollgate_time_to_first_token_seconds_count{model="flagship"}' in metrics
    assert 'tollgate_cost_usd_total{model="cheap",tenant="ledger-tenant"}' in metrics


def test_reports_equal_the_sum_of_the_records(gateway: str, traffic: tuple[str, list[dict]]) -> None:
    key, records = traffic
    by_model = _report(gateway, key, group_by="model").json()
    totals = by_model["totals"]
    assert totals["requests"] == len(records)
    assert totals["cost_usd"] == pytest.approx(sum(r["cost_usd"] for r in records), abs=1e-9 * len(records))
    assert totals["completion_tokens"] == sum(r["completion_tokens"] for r in records)
    assert totals["rejected"] == 1 and totals["errors"] == 3 and totals["routed"] == 1
    assert sum(g["cost_usd"] for g in by_model["groups"]) == pytest.approx(totals["cost_usd"])
    assert totals["flagship_only_usd"] >= totals["cost_usd"] and totals["savings_usd"] > 0
    by_route = {g["group"]: g["requests"] for g in _report(gateway, key, group_by="route").json()["groups"]}
    assert by_route == {"direct": 7, "router": 1}
    by_day = _report(gateway, key, group_by="day", since="7d").json()
    assert len(by_day["groups"]) == 7 and by_day["groups"][-1]["requests"] == len(records)
    csv_lines = _report(gateway, key, group_by="key", format="csv").text.splitlines()
    assert csv_lines[0].startswith("group,name,tenant,requests,") and csv_lines[-1].startswith(f"total,,,{len(records)},")


def test_tenants_see_only_their_own_reports_and_records(gateway: str, traffic: tuple[str, list[dict]]) -> None:
    key, records = traffic
    other = new_tenant_key(gateway, "ledger-other")
    assert _report(gateway, other, tenant="ledger-tenant").status_code == 403
    assert _report(gateway, other).json()["totals"]["requests"] == 0
    assert httpx.get(gateway + "/v1/ledger", params={"tenant": "ledger-tenant"},
                     headers={"authorization": f"Bearer {other}"}).status_code == 403
    seen_by_admin = _report(gateway, ADMIN_KEY, tenant="ledger-tenant", group_by="model").json()
    assert seen_by_admin["totals"]["requests"] == len(records)
    everyone = _report(gateway, ADMIN_KEY).json()
    assert everyone["tenant"] is None and everyone["totals"]["requests"] >= len(records)


@pytest.mark.parametrize("params, param", [
    ({"group_by": "colour"}, "group_by"), ({"format": "xml"}, "format"), ({"from": "yesterday"}, "from"),
    ({"from": "2026-11-21", "to": "2026-11-01"}, "from"), ({"from": "2020-01-01"}, "from"), ({"since": "7y"}, "since"),
])
def test_bad_report_parameters_are_clear_400s(gateway: str, tenant_key: str, params: dict, param: str | None) -> None:
    response = _report(gateway, tenant_key, **params)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_value" and response.json()["error"]["param"] == param


def test_the_cli_report_matches_the_api(gateway: str, traffic: tuple[str, list[dict]], tmp_path: Path) -> None:
    env = {**os.environ, "TOLLGATE_URL": gateway, "TOLLGATE_ADMIN_KEY": ADMIN_KEY}
    run = lambda *args: subprocess.run([sys.executable, "-m", "gateway", *args], env=env, capture_output=True,
                                       text=True, timeout=60)
    as_json = run("report", "--tenant", "ledger-tenant", "--since", "7d", "--by", "model", "--format", "json")
    assert as_json.returncode == 0, as_json.stderr
    api = _report(gateway, ADMIN_KEY, tenant="ledger-tenant", since="7d", group_by="model").json()
    assert json.loads(as_json.stdout) == api
    table = run("report", "--tenant", "ledger-tenant", "--since", "7d", "--by", "model")
    assert "cheap" in table.stdout and table.stdout.splitlines()[-1].startswith("total")
    exported = run("ledger", "export", "--tenant", "ledger-tenant")
    assert len(exported.stdout.splitlines()) == len(traffic[1])

    # The export is a traffic profile for the capacity planner: its answered calls' lengths and rate.
    export = tmp_path / "export.jsonl"
    export.write_text(exported.stdout)
    planned = run("pricing", "plan", "--model", "llama-3.1-8b", "--ledger", str(export), "--gpu", "l40s", "--gpus", "1",
                  "--precision", "fp8", "--api", "gpt-4o-mini", "--json")
    assert planned.returncode == 0, planned.stderr
    answered = [json.loads(line) for line in exported.stdout.splitlines()]
    answered = [r for r in answered if r["status"] == 200 and r["prompt_tokens"] > 0 and r["completion_tokens"] > 0]
    profile = json.loads(planned.stdout)["traffic"]
    assert profile["mean_input"] == pytest.approx(sum(r["prompt_tokens"] for r in answered) / len(answered))
    span = max(r["ts"] for r in answered) - min(r["ts"] for r in answered)
    assert profile["rate"] == pytest.approx((len(answered) - 1) / span)
    options = json.loads(planned.stdout)["options"]
    hosted = [o for o in options if o["kind"] == "self-hosted"]
    assert len(options) == 2 and len(hosted) == 1 and hosted[0]["replicas"] == 1  # a trickle: one replica
    assert [o["usd_per_hour"] for o in options] == sorted(o["usd_per_hour"] for o in options)


@pytest.mark.parametrize("linger_s", [0.0, 0.03])
def test_a_request_abandoned_before_its_answer_starts_is_still_recorded(gateway: str, linger_s: float) -> None:
    """Gone at once (maybe before the body is read), or while the gateway waits for the first token."""
    import socket

    key = new_tenant_key(gateway, f"ledger-abandon-{int(linger_s * 1000)}")
    body = json.dumps({"model": "slow", "messages": [{"role": "user", "content": "bye"}], "stream": True,
                       "max_tokens": 50}).encode()
    host, port = gateway.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     + f"Authorization: Bearer {key}\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
        time.sleep(linger_s)
    records = _ledger(gateway, key, expected=1)
    assert len(records) == 1, records
    record = records[0]
    assert record["error_code"] == "client_disconnected", record
    if record["requested_model"]:  # the body was read: the prompt was sent upstream and is billed
        assert record["prompt_tokens"] > 0 and record["completion_tokens"] < 50
