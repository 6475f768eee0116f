"""``tollgate ledger archive``: every raw record lands in the archive exactly once, across runs and crashes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai

from tests.support.stack import ADMIN_KEY, new_tenant_key


def _archived(directory: Path) -> list[dict]:
    return [json.loads(line) for path in sorted(directory.glob("*/*.jsonl")) for line in path.read_text().splitlines()]


def _served(gateway: str, tenant: str) -> list[dict]:
    """What the ledger API gives an admin (the archive reads it with an admin key)."""
    return httpx.get(gateway + "/v1/ledger", params={"limit": 1000, "tenant": tenant},
                     headers={"authorization": f"Bearer {ADMIN_KEY}"}).json()["data"]


def test_the_cli_archives_a_running_gateways_ledger_exactly_once(gateway: str, tmp_path: Path) -> None:
    key = new_tenant_key(gateway, "archive-tenant")
    client = openai.OpenAI(base_url=gateway + "/v1", api_key=key, max_retries=0, timeout=30)
    env = {**os.environ, "TOLLGATE_URL": gateway, "TOLLGATE_ADMIN_KEY": ADMIN_KEY}

    def call(count: int) -> None:
        for _ in range(count):
            client.chat.completions.create(model="cheap", messages=[{"role": "user", "content": "archive me"}], max_tokens=3)
        time.sleep(0.3)

    def archive(*args: str) -> subprocess.CompletedProcess:
        done = subprocess.run([sys.executable, "-m", "gateway", "ledger", "archive", "--dir", str(tmp_path), *args],
                              env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done

    call(3)
    assert "archived 3 records" in archive("--tenant", "archive-tenant").stdout
    again = archive("--tenant", "archive-tenant").stdout  # nothing new, and it says so
    assert "archived 3" not in again and "0 new records archived from 1 tenants; the archive was up to date" in again
    call(2)
    archive()  # every tenant, this one included
    records = _archived(tmp_path / "archive-tenant")
    served = _served(gateway, "archive-tenant")
    assert [r["request_id"] for r in records] == [r["request_id"] for r in served] and len(records) == 5
    assert records == served  # the same records, ledger_id included


def test_following_outlives_an_unreachable_gateway_and_a_single_run_fails(tmp_path: Path) -> None:
    from tests.support.processes import free_port

    dead = f"http://127.0.0.1:{free_port()}"
    command = [sys.executable, "-m", "gateway", "ledger", "archive", "--dir", str(tmp_path), "--url", dead, "--admin-key", "k"]
    once = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert once.returncode == 1 and "cannot reach" in once.stderr
    follower = subprocess.Popen([*command, "--follow", "--interval-s", "1"], stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(4.0)
        assert follower.poll() is None  # still running
    finally:
        follower.terminate()
        _, stderr = follower.communicate(timeout=10)
    assert stderr.count("retrying in 1s") >= 2
