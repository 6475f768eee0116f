"""model="auto" and model="router:<t>" on the request path, with live thresholds in Redis."""

from __future__ import annotations

import time

import httpx
import openai
import pytest

from tests.support.stack import ADMIN_KEY, admin, new_tenant_key

HARD = [{"role": "user", "content": "prove that the sum of seven odd numbers is a square"}]
EASY = [{"role": "user", "content": "what is the capital of paris"}]


def _ask(client: openai.OpenAI, model: str, messages: list) -> tuple[str, float]:
    raw = client.chat.completions.with_raw_response.create(model=model, messages=messages, max_tokens=3)
    assert raw.parse().model == raw.headers["x-tollgate-model"]
    return raw.headers["x-tollgate-model"], float(raw.headers["x-tollgate-router-score"])


def _set(gateway: str, body: dict) -> dict:
    with admin(gateway) as api:
        response = api.put("/admin/router/thresholds", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def test_auto_sends_hard_prompts_to_the_flagship_and_easy_ones_to_the_cheap_model(client: openai.OpenAI) -> None:
    hard_model, hard_score = _ask(client, "auto", HARD)
    easy_model, easy_score = _ask(client, "auto", EASY)
    assert hard_score > 0.5 > easy_score
    assert (hard_model, easy_model) == ("flagship", "cheap")


def test_a_task_hint_rides_in_metadata_through_the_sdk_and_is_not_forwarded(client: openai.OpenAI) -> None:
    """The SDK's ``metadata`` carries ``tollgate_task``; the stack's router (trained without hints)
    scores the same, and the engine (a simulator that echoes nothing of it) answers as usual."""
    plain = client.chat.completions.with_raw_response.create(model="auto", messages=HARD, max_tokens=3)
    hinted = client.chat.completions.with_raw_response.create(model="auto", messages=HARD, max_tokens=3,
                                                              metadata={"tollgate_task": "math", "team": "search"})
    assert hinted.headers["x-tollgate-router-score"] == plain.headers["x-tollgate-router-score"]
    assert hinted.parse().choices[0].message.content
    assert hinted.headers["x-tollgate-router-version"] == plain.headers["x-tollgate-router-version"]


def test_a_request_can_pick_its_own_threshold(client: openai.OpenAI) -> None:
    assert _ask(client, "router:0", EASY)[0] == "flagship"
    assert _ask(client, "router:1", HARD)[0] == "cheap"  # only a score of exactly 1 would reach the flagship
    for bad in ("router:abc", "router:1.5", "router:-0.1"):
        with pytest.raises(openai.BadRequestError) as caught:
            client.chat.completions.create(model=bad, messages=EASY)
        assert caught.value.body["param"] == "model"


def test_threshold_changes_reach_the_gateway_within_a_second_and_tenants_can_differ(gateway: str, client: openai.OpenAI) -> None:
    other = openai.OpenAI(base_url=gateway + "/v1", api_key=new_tenant_key(gateway, "router-tenant"), max_retries=0)
    try:
        state = _set(gateway, {"threshold": 0.0, "tenants": {"router-tenant": 1.0}})
        assert state["threshold"] == 0.0 and state["tenants"] == {"router-tenant": 1.0}
        time.sleep(1.0)
        assert _ask(client, "auto", EASY)[0] == "flagship"  # global 0: everything to the flagship
        assert _ask(other, "auto", HARD)[0] == "cheap"  # this tenant's override: nothing
    finally:
        _set(gateway, {"threshold": 0.5, "tenants": {"router-tenant": None}})
    time.sleep(1.0)
    assert _ask(client, "auto", EASY)[0] == "cheap"


def test_threshold_admin_api_rejects_bad_values_and_tenant_keys(gateway: str, tenant_key: str) -> None:
    with admin(gateway) as api:
        assert api.put("/admin/router/thresholds", json={"threshold": 2}).status_code == 400
        assert api.put("/admin/router/thresholds", json={"tenants": {"x": 7}}).status_code == 400
        assert api.put("/admin/router/thresholds", json={"nonsense": 1}).status_code == 400
    response = httpx.get(gateway + "/admin/router/thresholds", headers={"authorization": f"Bearer {tenant_key}"})
    assert response.status_code == 403


def test_router_show_tells_values_in_force_from_overrides(gateway: str) -> None:
    import os
    import subprocess
    import sys

    env = {**os.environ, "TOLLGATE_URL": gateway, "TOLLGATE_ADMIN_KEY": ADMIN_KEY}
    with admin(gateway) as api:
        shown = api.put("/admin/router/thresholds", json={"escalation": None}).json()  # an explicit null clears
        assert shown["escalation"] == shown["configured"]["escalation"] is not None  # no override: the config's
        assert shown["overrides"]["escalation"] is None
        api.put("/admin/router/thresholds", json={"escalation": 0.42})
        try:
            shown = api.get("/admin/router/thresholds").json()
            assert shown["escalation"] == shown["overrides"]["escalation"] == 0.42 != shown["configured"]["escalation"]
            table = subprocess.run([sys.executable, "-m", "gateway", "router", "show"], env=env, capture_output=True,
                                   text=True, timeout=60)
            assert table.returncode == 0 and "live_override" in table.stdout and "0.42" in table.stdout
        finally:
            api.put("/admin/router/thresholds", json={"escalation": None})


def test_hand_edited_garbage_in_redis_does_not_break_the_threshold_api(gateway: str, valkey: str) -> None:
    import redis

    store = redis.Redis.from_url(valkey)
    store.hset("tg:router:thresholds", "tenant:typo", "not-a-number")
    try:
        with admin(gateway) as api:
            response = api.get("/admin/router/thresholds")
        assert response.status_code == 200 and "typo" not in response.json()["tenants"]
    finally:
        store.hdel("tg:router:thresholds", "tenant:typo")
