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
    shaped = _cli(gateway, "keys", "create", "--tenant", "cli-co", "--expires", "30d", "--model", "cheap,flagship",
                  "--tag", "ci", "--meta", "owner=bob")
    assert shaped.returncode == 0, shaped.stderr
    terms = json.loads(shaped.stdout)
    assert terms["models"] == ["cheap", "flagship"] and terms["tags"] == ["ci"] and terms["metadata"] == {"owner": "bob"}
    assert terms["expires"] == pytest.approx(time.time() + 30 * 86400, abs=60)
    updated = json.loads(_cli(gateway, "keys", "update", terms["id"], "--expires", "never", "--model", "all").stdout)
    assert updated["expires"] is None and updated["models"] is None and updated["tags"] == ["ci"]
    table = _cli(gateway, "keys", "list", "--tenant", "cli-co").stdout
    assert "never" in table and "ci" in table and "None" not in table
    rotated = json.loads(_cli(gateway, "keys", "rotate", terms["id"], "--overlap", "1h").stdout)
    assert rotated["id"] == terms["id"] and rotated["key"].startswith(f"sk-tg-{terms['id']}.")
    assert json.loads(_cli(gateway, "keys", "revoke", key["id"]).stdout)["revoked"] is True
    failed = _cli(gateway, "keys", "create", "--tenant", "nobody")
    assert failed.returncode == 1 and "no tenant" in failed.stderr


def test_a_configured_gateway_creates_no_tenant_or_key_of_its_own(gateway: str) -> None:
    """Only the demo stack (no config file) starts with a default tenant and a printed key."""
    with admin(gateway) as api:
        assert "default" not in {t["id"] for t in api.get("/admin/tenants").json()["data"]}


def _key_id(key: str) -> str:
    return key.split("-")[2].split(".")[0]


def test_a_key_expires_and_says_so(gateway: str) -> None:
    new_tenant_key(gateway, "expiring")
    with admin(gateway) as api:
        created = api.post("/admin/keys", json={"tenant": "expiring", "expires_in": "2s"}).json()
        assert api.post("/admin/keys", json={"tenant": "expiring", "expires_in": "soon"}).status_code == 400
    assert created["expires"] == pytest.approx(time.time() + 2, abs=2)
    client = openai.OpenAI(base_url=gateway + "/v1", api_key=created["key"], max_retries=0)
    assert client.chat.completions.create(model="cheap", messages=HELLO, max_tokens=2).choices
    time.sleep(2.5)
    with pytest.raises(openai.AuthenticationError, match="expired"):
        client.chat.completions.create(model="cheap", messages=HELLO, max_tokens=2)


def test_a_key_limited_to_models_gets_a_clear_403_for_the_others(gateway: str) -> None:
    new_tenant_key(gateway, "limited")
    with admin(gateway) as api:
        created = api.post("/admin/keys", json={"tenant": "limited", "models": ["cheap"], "tags": ["team:web"],
                                                "metadata": {"owner": "alice"}}).json()
        unknown = api.post("/admin/keys", json={"tenant": "limited", "models": ["gpt-9"]})
    assert unknown.status_code == 400 and unknown.json()["error"]["param"] == "models"
    assert created["models"] == ["cheap"] and created["tags"] == ["team:web"] and created["metadata"] == {"owner": "alice"}
    client = openai.OpenAI(base_url=gateway + "/v1", api_key=created["key"], max_retries=0)
    assert client.chat.completions.create(model="cheap", messages=HELLO, max_tokens=2).choices
    with pytest.raises(openai.PermissionDeniedError) as refused:
        client.chat.completions.create(model="flagship", messages=HELLO, max_tokens=2)
    assert refused.value.code == "model_not_allowed" and "cheap" in refused.value.message
    assert [m.id for m in client.models.list()] == ["cheap"]
    with admin(gateway) as api:  # any model again
        assert api.patch(f"/admin/keys/{created['id']}", json={"models": None}).json()["models"] is None
    time.sleep(1.0)
    assert client.chat.completions.create(model="flagship", messages=HELLO, max_tokens=2).choices


def test_a_rotated_key_keeps_its_id_and_the_old_secret_works_only_for_the_overlap(gateway: str) -> None:
    old = new_tenant_key(gateway, "rotating")
    with admin(gateway) as api:
        rotated = api.post(f"/admin/keys/{_key_id(old)}/rotate", json={"overlap": "2s"}).json()
    new = rotated["key"]
    assert _key_id(new) == _key_id(old) == rotated["id"] and new != old and rotated["previous_secret_until"]
    for key in (old, new):
        client = openai.OpenAI(base_url=gateway + "/v1", api_key=key, max_retries=0)
        assert client.chat.completions.create(model="cheap", messages=HELLO, max_tokens=2).choices
    time.sleep(3.0)
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=gateway + "/v1", api_key=old, max_retries=0).chat.completions.create(
            model="cheap", messages=HELLO, max_tokens=2)
    assert openai.OpenAI(base_url=gateway + "/v1", api_key=new, max_retries=0).chat.completions.create(
        model="cheap", messages=HELLO, max_tokens=2).choices


def test_admins_see_spend_by_tenant_and_tenants_see_their_spend_by_tag(gateway: str) -> None:
    spend = {"spend-big": 3, "spend-small": 1}
    keys = {}
    with admin(gateway) as api:
        for tenant, calls in spend.items():
            api.post("/admin/tenants", json={"id": tenant, "name": tenant.title()})
            keys[tenant] = api.post("/admin/keys", json={"tenant": tenant, "name": f"{tenant} app",
                                                          "tags": ["prod", f"team:{tenant}"]}).json()
            client = openai.OpenAI(base_url=gateway + "/v1", api_key=keys[tenant]["key"], max_retries=0)
            for _ in range(calls):
                client.chat.completions.create(model="flagship", messages=HELLO, max_tokens=8)
        by_tenant = api.get("/v1/reports/costs", params={"group_by": "tenant"}).json()
        csv = api.get("/v1/reports/costs", params={"group_by": "tenant", "format": "csv"}).text
    rows = [row for row in by_tenant["groups"] if row["group"] in spend]
    assert [(row["group"], row["name"], row["requests"]) for row in rows] == [
        ("spend-big", "Spend-Big", 3), ("spend-small", "Spend-Small", 1)]
    assert [row["cost_usd"] for row in by_tenant["groups"]] == sorted((r["cost_usd"] for r in by_tenant["groups"]), reverse=True)
    assert csv.splitlines()[0].startswith("group,name,requests") and "spend-big,Spend-Big,3," in csv
    tenant_headers = {"authorization": f"Bearer {keys['spend-big']['key']}"}
    forbidden = httpx.get(gateway + "/v1/reports/costs", params={"group_by": "tenant"}, headers=tenant_headers)
    assert forbidden.status_code == 403 and forbidden.json()["error"]["code"] == "admin_only"
    by_tag = httpx.get(gateway + "/v1/reports/costs", params={"group_by": "tag"}, headers=tenant_headers).json()
    assert {row["group"]: row["requests"] for row in by_tag["groups"]} == {"prod": 3, "team:spend-big": 3}
    by_key = httpx.get(gateway + "/v1/reports/costs", params={"group_by": "key"}, headers=tenant_headers).json()
    assert [(row["group"], row["name"], row["tenant"]) for row in by_key["groups"]] == [
        (keys["spend-big"]["id"], "spend-big app", "spend-big")]
    env = {"TOLLGATE_URL": gateway, "TOLLGATE_ADMIN_KEY": ADMIN_KEY, "PATH": "/usr/bin:/bin"}
    table = subprocess.run([sys.executable, "-m", "gateway", "report", "--by", "tenant"], env=env, capture_output=True,
                           text=True, timeout=60)
    assert table.returncode == 0 and "Spend-Big" in table.stdout, table.stderr
