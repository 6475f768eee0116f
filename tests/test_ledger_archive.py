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

from gateway.cli.ledger_archive import PAGE, archive_tenant, resume_point, trim_warning
from tests.conftest import ADMIN_KEY, new_tenant_key


def _archived(directory: Path) -> list[dict]:
    return [json.loads(line) for path in sorted(directory.glob("*/*.jsonl")) for line in path.read_text().splitlines()]


def _served(gateway: str, key: str) -> list[dict]:
    return httpx.get(gateway + "/v1/ledger", params={"limit": 1000}, headers={"authorization": f"Bearer {key}"}).json()["data"]


def test_pages_are_written_as_whole_batches_and_resumed_from_the_file_names(tmp_path: Path) -> None:
    stream = [{"request_id": f"r{i}", "ledger_id": f"{1_700_000_000_000 + i * 10}-{i % 3}"} for i in range(2 * PAGE + 7)]
    asked: list[dict] = []  # the query of every page fetched, to check where a run resumes

    def fetch(params: dict) -> dict:
        asked.append(params)
        start = 0
        if "after" in params:
            start = next(i for i, r in enumerate(stream) if r["ledger_id"] == params["after"]) + 1
        page = stream[start : start + PAGE]
        return {"data": page, "next": page[-1]["ledger_id"] if len(page) == PAGE else None, "oldest": stream[0]["ledger_id"],
                "trimmed": 0}

    assert archive_tenant(fetch, "acme", tmp_path) == (2 * PAGE + 7, None)
    assert [r["request_id"] for r in _archived(tmp_path / "acme")] == [r["request_id"] for r in stream]
    assert len(list((tmp_path / "acme").glob("*/*.jsonl"))) == 3
    assert resume_point(tmp_path / "acme") == stream[-1]["ledger_id"]
    stream.extend({"request_id": f"new{i}", "ledger_id": f"1800000000000-{i}"} for i in range(2))
    (tmp_path / "acme" / "2023-11-14" / "torn.tmp").write_text('{"request_id": "half')  # a batch cut by a crash
    assert archive_tenant(fetch, "acme", tmp_path) == (2, None)
    assert asked[-1]["after"] == stream[-3]["ledger_id"]
    assert [r["request_id"] for r in _archived(tmp_path / "acme")] == [r["request_id"] for r in stream]


def test_trimmed_records_are_reported() -> None:
    assert trim_warning(None, "5-0", 0) is None
    assert "12 records" in trim_warning(None, "5-0", 12)
    assert trim_warning("9-0", "5-0", 40) is None  # the resume point is still held: nothing unread was trimmed
    assert "may have been trimmed" in trim_warning("9-0", "10-0", 40)
    assert trim_warning("9-0", "10-0", 40) and trim_warning("900-0", "1000-0", 0)  # numeric order, not text


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
    assert archive("--tenant", "archive-tenant").stdout == ""  # nothing new
    call(2)
    archive()  # every tenant, this one included
    records = _archived(tmp_path / "archive-tenant")
    served = _served(gateway, key)
    assert [r["request_id"] for r in records] == [r["request_id"] for r in served] and len(records) == 5
    assert records == served  # the same records, ledger_id included


def test_following_outlives_an_unreachable_gateway_and_a_single_run_fails(tmp_path: Path) -> None:
    from tests.processes import free_port

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
