"""Tenants and keys: shown once, stored hashed, revocation reaches the gateway within a second."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import httpx
import openai
import pytest
import redis

from tests.support.stack import ADMIN_KEY, admin, new_tenant_key

HELLO = [{"role": "user", "content": "hello"}]


def test_new_key_works_and_revocation_holds_within_a_second(gateway: str) -> None:
    key = new_tenant_key(gateway, "revoke-me")
    client = openai.OpenAI(base_url=gateway + "/v1", api_key=key, max_retries=0)
    assert client.chat.completions.create(model="cheap", messages=HELLO, max_tokens=2).choices
    key_id = key.split("-")[2].split(".")[0]
    with admin(gateway) as api:
        revoked = api.delete(f"/admin/keys/{key_id}")
    assert revoked.status_code == 200 and revoked.json()["revoked"] is True
    time.sleep(1.0)
    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(model="cheap", messages=HELLO, max_tokens=2)


def test_keys_are_stored_only_as_hashes(gateway: str, valkey: str) -> None:
    key = new_tenant_key(gateway, "hash-check")
    secret = key.split(".", 1)[1]
    store = redis.Redis.from_url(valkey)
    for name in store.scan_iter("tg:*"):
        kind = store.type(name)
        if kind == b"stream":  # ledger records: never a key either
            values = [v for _, fields in store.xrange(name) for v in fields.values()]
        else:
            values = (
                store.hgetall(name).values() if kind == b"hash"
                else store.smembers(name) if kind == b"set"
                else store.zrange(name, 0, -1) if kind == b"zset"  # budget holds: request ids
                else [store.get(name) or b""]
            )
        assert all(secret.encode() not in v and key.encode() not in v for v in values)
    with admin(gateway) as api:
        listed = api.get("/admin/keys", params={"tenant": "hash-check"}).json()["data"]
    assert listed and all("key" not in row and "hash" not in row for row in listed)


def test_disabling_a_tenant_revokes_its_keys(gateway: str) -> None:
    key = new_tenant_key(gateway, "to-disable")
    with admin(gateway) as api:
        assert api.delete("/admin/tenants/to-disable").json()["disabled"] is True
        assert api.post("/admin/keys", json={"tenant": "to-disable"}).status_code == 409
    time.sleep(1.0)
    response = httpx.get(gateway + "/v1/models", headers={"authorization": f"Bearer {key}"})
    assert response.status_code == 401


def test_duplicate_tenant_is_409(gateway: str) -> None:
    with admin(gateway) as api:
        api.post("/admin/tenants", json={"id": "twice"})
        again = api.post("/admin/tenants", json={"id": "twice"})
    assert again.status_code == 409 and again.json()["error"]["code"] == "tenant_exists"


def test_admin_key_created_through_the_api_can_administer(gateway: str) -> None:
    with admin(gateway) as api:
        created = api.post("/admin/keys", json={"role": "admin", "name": "ops"}).json()
    response = httpx.get(gateway + "/admin/tenants", headers={"authorization": f"Bearer {created['key']}"})
    assert response.status_code == 200


def _cli(gateway: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args, "--url", gateway],
        env={"TOLLGATE_ADMIN_KEY": ADMIN_KEY, "PATH": "/usr/bin:/bin"}, capture_output=True, text=True, timeout=60,
    )


def test_cli_manages_tenants_and_keys(gateway: str) -> None:
    assert _cli(gateway, "tenants", "create", "cli-co", "--name", "CLI Co").returncode == 0
    assert "cli-co" in _cli(gateway, "tenants", "list").stdout
    created = _cli(gateway, "keys", "create", "--tenant", "cli-co", "--name", "laptop")
    assert created.returncode == 0, created.stderr
    key = json.loads(created.stdout)
    listing = _cli(gateway, "keys", "list", "--tenant", "cli-co", "--json")
    assert [row["id"] for row in json.loads(listing.stdout)] == [key["id"]]
    assert key["key"] not in listing.stdout
    assert json.loads(_cli(gateway, "keys", "revoke", key["id"]).stdout)["revoked"] is True
    failed = _cli(gateway, "keys", "create", "--tenant", "nobody")
    assert failed.returncode == 1 and "no tenant" in failed.stderr


def test_a_configured_gateway_creates_no_tenant_or_key_of_its_own(gateway: str) -> None:
    """Only the demo stack (no config file) starts with a default tenant and a printed key."""
    with admin(gateway) as api:
        assert "default" not in {t["id"] for t in api.get("/admin/tenants").json()["data"]}
