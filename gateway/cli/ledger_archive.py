"""``tollgate ledger archive``: copy every raw ledger record to files, exactly once, before Redis trims it.

Redis keeps the newest ``ledger.max_records_per_tenant`` raw records per tenant (aggregates are
kept apart, so reports never need them). The archive is the durable copy of the rest: run it from
cron, or as a sidecar with ``--follow``, wherever the files should live; it reads the ledger API like
``ledger export`` does, so it needs no access to Redis.

Layout: ``DIR/<tenant>/<UTC day of the batch's first record>/<first ledger_id>_<last ledger_id>.jsonl``.
Each batch is written to a temporary file, fsynced, then renamed into place, so a batch is either
whole or absent; the highest ``last`` id among the file names is where the next run resumes. A crash
at any point therefore neither loses nor repeats a record. Records carry their ``ledger_id``.
"""

from __future__ import annotations

import datetime
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import typer

from .options import ADMIN_KEY, URL, call
from .progress import progress

PAGE = 1000

Fetch = Callable[[dict], dict]  # query parameters -> one /v1/ledger page


def stream_id_key(ledger_id: str) -> tuple[int, int]:
    """Stream ids ``<ms>-<seq>`` compare as number pairs, not as text."""
    ms, _, seq = ledger_id.partition("-")
    return int(ms), int(seq or 0)


def resume_point(tenant_dir: Path) -> str | None:
    """The last ledger id already archived for a tenant (from the batch file names)."""
    last = None
    for path in tenant_dir.glob("*/*.jsonl"):
        _, _, batch_last = path.stem.partition("_")
        if batch_last and (last is None or stream_id_key(batch_last) > stream_id_key(last)):
            last = batch_last
    return last


def write_batch(tenant_dir: Path, records: list[dict]) -> Path:
    """One batch of records as a whole file, atomically."""
    first, last = records[0]["ledger_id"], records[-1]["ledger_id"]
    day = datetime.datetime.fromtimestamp(stream_id_key(first)[0] / 1000, datetime.UTC).date().isoformat()
    target = tenant_dir / day / f"{first}_{last}.jsonl"
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_suffix(".tmp")
    with open(temporary, "w", encoding="utf-8") as handle:
        handle.writelines(json.dumps(record, separators=(",", ":")) + "\n" for record in records)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, target)
    return target


def trim_warning(after: str | None, oldest: str | None, trimmed: int) -> str | None:
    """Whether Redis may have trimmed records this archive never read."""
    if after is None and trimmed:
        return f"{trimmed} records were trimmed before the first archive"
    if after is not None and oldest is not None and stream_id_key(oldest) > stream_id_key(after):
        return "the last archived record is no longer in Redis: records after it may have been trimmed unread"
    return None


def archive_tenant(fetch: Fetch, tenant: str, directory: Path) -> tuple[int, str | None]:
    """Archive a tenant's records newer than its resume point: (records written, a trim warning or None)."""
    tenant_dir = directory / tenant
    after = resume_point(tenant_dir)
    written, warning = 0, None
    while True:
        page = fetch({"tenant": tenant, "limit": str(PAGE), **({"after": after} if after else {})})
        if written == 0:
            warning = warning or trim_warning(after, page.get("oldest"), int(page.get("trimmed") or 0))
        records = page["data"]
        if records:
            write_batch(tenant_dir, records)
            written += len(records)
            after = records[-1]["ledger_id"]
        if not page["next"]:
            return written, warning


def archive_pass(fetch: Fetch, names: list[str], directory: Path, on_tenant: Callable[[int], None] = lambda n: None) -> None:
    """Archive every tenant in ``names``; always ends with one line saying what the pass did (a pass
    with nothing new says so, rather than nothing)."""
    total = 0
    for name in names:
        written, warning = archive_tenant(fetch, name, directory)
        on_tenant(1)
        total += written
        if written:
            typer.echo(f"{name}: archived {written} records")
        if warning:
            typer.echo(f"{name}: {warning}; archive more often or raise ledger.max_records_per_tenant", err=True)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    typer.echo(f"{stamp}: {total} new records archived from {len(names)} tenants"
               + ("" if total else "; the archive was up to date") + f" ({directory})")


def ledger_archive(
    directory: Path = typer.Option(..., "--dir", help="Where the archive lives (one folder per tenant)."),
    tenant: list[str] | None = typer.Option(None, help="Only these tenants (repeatable; default: every tenant)."),
    follow: bool = typer.Option(False, help="Keep running, archiving every --interval-s seconds."),
    interval_s: float = typer.Option(60.0, min=1.0, help="With --follow: seconds between passes."),
    url: str = URL,
    admin_key: str = ADMIN_KEY,
) -> None:
    """Copy raw ledger records to files, exactly once, before Redis trims them.

    With ``--follow`` a pass that fails (gateway unreachable, store down) is retried at the next
    interval: a sidecar must outlive a gateway restart. Without it, a failure exits non-zero.
    """
    fetch: Fetch = lambda params: call("GET", url, admin_key, "/v1/ledger", params=params)  # noqa: E731
    while True:
        try:
            names = tenant or [row["id"] for row in call("GET", url, admin_key, "/admin/tenants")["data"]]
            with progress("archiving tenants", len(names)) as step:
                archive_pass(fetch, names, directory, step)
        except typer.Exit:
            if not follow:
                raise
            typer.echo(f"archive pass failed; retrying in {interval_s:g}s", err=True)
        if not follow:
            return
        time.sleep(interval_s)
