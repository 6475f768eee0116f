"""Prefix-aware replica choice with two real replicas behind the gateway."""

from __future__ import annotations

import time

import httpx
import redis as sync_redis

from tests.support.stack import ADMIN_KEY, new_tenant_key


def test_a_conversation_stays_on_the_replica_that_holds_its_prefix(gateway: str, valkey: str) -> None:
    key = new_tenant_key(gateway, "prefix-tenant")
    system = {"role": "system", "content": "You are the billing assistant of Example Corp. " * 30}
    history = [system]
    replicas, cached = [], []
    for turn in range(4):
        history.append({"role": "user", "content": f"question number {turn}: what changed on invoice {turn}?"})
        response = httpx.post(gateway + "/v1/chat/completions", timeout=30, headers={"authorization": f"Bearer {key}"},
                              json={"model": "pair", "messages": history, "max_tokens": 8, "seed": turn})
        answer = response.json()
        assert response.status_code == 200, answer
        history.append({"role": "assistant", "content": answer["choices"][0]["message"]["content"]})
        cached.append(answer["usage"]["prompt_tokens_details"]["cached_tokens"])
        time.sleep(0.1)  # the index is written just after the answer starts
    time.sleep(0.2)
    records = httpx.get(gateway + "/v1/ledger", params={"tenant": "prefix-tenant"},  # admins see replicas
                        headers={"authorization": f"Bearer {ADMIN_KEY}"}).json()["data"]
    replicas = {r["replica"] for r in records}
    assert len(replicas) == 1, replicas  # every turn went where the previous turns were cached
    assert cached[0] == 0 and all(c > 300 for c in cached[1:]), cached
    store = sync_redis.Redis.from_url(valkey)
    assert any(True for _ in store.scan_iter("tg:px:{b:pair}:*", count=1000))
