"""The durable per-call ledger: one record per call, written with its aggregates and settlement.

A write is one script run (``scripts.RECORD``): mark the request id as recorded, append the record
to the tenant's stream, add to the tenant's day aggregates, and settle what admission reserved.
If Redis cannot be reached the same write goes to the local spool and is replayed when Redis
answers again; the request-id marker makes a replay of an already-written record a no-op.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from ... import metrics
from ...logs import Warnings
from ...store.fast_redis import ScriptRunner
from ...store.redis import as_text
from .limits import admission_key, holds_key, recorded_key
from .periods import day_label
from .record import CallRecord, dimension_rows, metric_amounts
from .scripts import RECORD
from .spool import Spool, locked_lines

log = logging.getLogger("tollgate.ledger")
throttled = Warnings(log)
Settlement = tuple[str, str, int]  # a limit counter, its kind, and what the call used of it
_BREAKER_S = 1.0  # after a failed write, spool directly for this long instead of waiting on Redis


def stream_key(tenant: str) -> str:
    return f"tg:ledger:{{t:{tenant}}}"


def aggregate_key(tenant: str, day: str) -> str:
    return f"tg:agg:{{t:{tenant}}}:{day}"


class Ledger:
    def __init__(self, redis: Redis, scripts: ScriptRunner, spool_dir: Path, *, max_records: int,
                 retention_days: int, dedupe_ttl_s: int) -> None:
        self.redis = redis
        self.scripts = scripts
        self.spool = Spool(spool_dir)
        self.max_records = max_records
        self.aggregate_ttl_s = retention_days * 86_400
        self.dedupe_ttl_s = dedupe_ttl_s
        self._down_until = 0.0
        self._pending: set[asyncio.Task] = set()

    async def write(self, record: CallRecord, settlements: list[Settlement]) -> None:
        """Record a call; never raises: what Redis does not take goes to the spool."""
        if time.monotonic() < self._down_until or not await self._write(record, settlements):
            self.spool.append(orjson.dumps({"record": orjson.Fragment(record.to_json()), "settle": settlements}))
            metrics.LEDGER_SPOOLED.inc()

    def write_soon(self, record: CallRecord, settlements: list[Settlement]) -> None:
        """Record from a place that may be cancelled (a stream's end): the write runs on its own."""
        task = asyncio.get_running_loop().create_task(self.write(record, settlements))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _write(self, record: CallRecord, settle: list[Settlement]) -> bool:
        tenant = record.tenant
        amounts = metric_amounts(record)
        keys = [recorded_key(tenant, record.request_id), stream_key(tenant), aggregate_key(tenant, day_label(record.ts)),
                *(s[0] for s in settle), *(holds_key(s[0]) for s in settle), admission_key(tenant, record.request_id)]
        args: list = [record.to_json(), self.dedupe_ttl_s, self.max_records, self.aggregate_ttl_s,
                      record.key_id or "-", record.route, len(amounts)]
        args += [part for pair in amounts.items() for part in pair]
        rows = dimension_rows(record)
        args.append(len(rows))
        for row, counted in rows:
            args += [row, -1] if counted is None else [row, len(counted), *(x for pair in counted.items() for x in pair)]
        args += [part for s in settle for part in s[1:]]
        args.append(record.request_id)
        try:
            await self.scripts.run(RECORD, keys, args)
        except (RedisError, OSError) as err:
            self._down_until = time.monotonic() + _BREAKER_S
            metrics.STORE_ERRORS.labels("ledger").inc()
            throttled.warn(f"ledger writes spooled: store unreachable ({type(err).__name__})")
            return False
        return True

    async def _write_line(self, line: bytes) -> bool:
        try:
            entry = orjson.loads(line)
            record = CallRecord.from_json(orjson.dumps(entry["record"]))
        except (orjson.JSONDecodeError, KeyError, TypeError) as err:
            log.error("skipping unreadable spool line (%s)", err)  # e.g. a line torn by a crash
            return True
        # (key, kind, used); lines spooled by an earlier version carry (key, kind, window, used, release)
        settle = [(s[0], s[1], s[-2] if len(s) == 5 else s[2]) for s in entry.get("settle") or []]
        return await self._write(record, settle)

    async def replay(self) -> int:
        """Move spooled records into Redis; returns how many lines were replayed."""
        replayed = 0
        for path in self.spool.claim():
            lines = locked_lines(path)
            if lines is None:
                continue
            complete = True
            for line in lines:
                if not await self._write_line(line):
                    complete = False
                    break
                replayed += 1
            if complete:
                path.unlink(missing_ok=True)
            else:
                lines.close()
                break
        if replayed:
            log.info("replayed %d spooled ledger records", replayed)
        return replayed

    async def replay_forever(self, interval_s: float = 1.0) -> None:
        while True:
            await asyncio.sleep(interval_s)
            if self.spool.pending() and time.monotonic() >= self._down_until:
                try:
                    await self.replay()
                except OSError as err:  # a spool file problem must not stop the loop
                    log.error("spool replay failed: %s", err)

    async def drain(self, timeout_s: float = 5.0) -> None:
        """At shutdown: let in-flight writes finish (or spool) before the Redis client closes."""
        if self._pending:
            await asyncio.wait(list(self._pending), timeout=timeout_s)
        self.spool.close()

    async def records(self, tenant: str, start_ms: int, end_ms: int, after: str | None,
                      limit: int) -> tuple[list[dict], str | None]:
        """Raw records of a tenant in write order, ``limit`` at a time; the cursor is a stream id.

        Each record carries its stream id as ``ledger_id``: where an archiver resumes from.
        """
        low = f"({after}" if after else str(start_ms)
        rows = await self.redis.xrange(stream_key(tenant), min=low, max=str(end_ms), count=limit) or []
        records = []
        for entry_id, fields in rows:
            if entry_id is None or not fields:
                continue
            record = orjson.loads(fields[b"r"])
            record["ledger_id"] = as_text(entry_id)
            records.append(record)
        cursor = records[-1]["ledger_id"] if len(rows) == limit else None
        return records, cursor

    async def retention(self, tenant: str) -> tuple[str | None, int]:
        """The id of the oldest raw record Redis still holds, and how many older ones were trimmed."""
        try:
            info = await self.redis.xinfo_stream(stream_key(tenant))
        except ResponseError:  # no record yet
            return None, 0
        first = info.get("first-entry")
        oldest = first[0].decode() if first else None
        return oldest, int(info.get("entries-added", 0)) - int(info.get("length", 0))
