"""``tollgate ledger archive``'s bookkeeping: whole batches, resumed from the file names; trims reported."""

from __future__ import annotations

import json
from pathlib import Path

from gateway.cli.ledger_archive import PAGE, archive_tenant, resume_point, trim_warning


def _archived(directory: Path) -> list[dict]:
    return [json.loads(line) for path in sorted(directory.glob("*/*.jsonl")) for line in path.read_text().splitlines()]


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
