"""The GPU bill of each self-hosted deployment, metered in 10-second slots, and how busy it was.

A self-hosted deployment costs its GPUs x $/GPU-hour whether or not it serves anything. Call
prices carry only the busy time they used (``stages/pricing.py``), so the rest of the bill must be
shown somewhere, or reports would not add up to what finance pays: that rest is *idle capacity*.

Every gateway worker runs ``meter_forever``. At each slot boundary, for each self-hosted backend,
it claims the slot just ended and adds to a global per-day hash:

- ``<backend>|bill``: the slot's bill in nano-USD, replicas x GPUs x $/GPU-hour x 10 s;
- ``<backend>|seen``: replica-milliseconds metered;
- ``<backend>|busy``: replica-milliseconds during which anything ran, from the replicas' load
  windows (``upstream/load.py``; with engine metrics that includes other gateways' requests).

A slot is metered once however many workers run: the claim holds how much of the slot was
metered, and a worker that saw more of it (one started mid-slot claimed it first) adds only the
share the claim lacked. So the bill covers the time at least one gateway ran with the backend
configured, from the moment it started: a period with every gateway down is not on it. The report
(``reports.build_backend_report``) sets the bill beside the cost attributed to calls.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError

from ...store.fast_redis import Script, ScriptRunner
from ...upstream.load import KEEP_S
from ...upstream.pool import UpstreamPool
from ..pricing import Pricing
from .limits import usd_to_nano
from .periods import day_label

log = logging.getLogger("tollgate.metering")
SLOT_S = 10
CLAIM_TTL_S = 3600  # a slot is claimed long after every worker has passed it


def meter_key(day: str) -> str:
    """One hash per UTC day, every backend's fields; ``{meter}`` keeps claims and days in one cluster slot."""
    return f"tg:{{meter}}:day:{day}"


def claim_key(backend: str, slot: int) -> str:
    return f"tg:{{meter}}:claim:{backend}:{slot}"


# KEYS: the slot's claim, the day hash. ARGV: claim TTL, day hash TTL, milliseconds of the slot this
# worker metered, then (field, amount) pairs for them. Adds the share of them the claim lacked.
# Returns 1 when this worker added anything, 0 when others had metered as much of the slot.
METER = Script("""
local before = tonumber(redis.call('GET', KEYS[1]) or '0')
local covered = tonumber(ARGV[3])
if covered <= before then return 0 end
redis.call('SET', KEYS[1], covered, 'EX', ARGV[1])
local share = (covered - before) / covered
for i = 4, #ARGV, 2 do
  redis.call('HINCRBY', KEYS[2], ARGV[i], math.floor(tonumber(ARGV[i + 1]) * share + 0.5))
end
redis.call('EXPIRE', KEYS[2], ARGV[2])
return 1
""")


@dataclass(frozen=True)
class SlotReading:
    """One backend over one slot."""

    backend: str
    replicas: int
    usd_per_replica_hour: float
    busy_replica_s: float  # summed over its replicas

    def fields(self, seconds: float) -> list[tuple[str, int]]:
        """The hash fields for ``seconds`` of metered time."""
        bill = usd_to_nano(self.replicas * self.usd_per_replica_hour * seconds / 3600)
        return [(f"{self.backend}|bill", bill), (f"{self.backend}|seen", round(self.replicas * seconds * 1000)),
                (f"{self.backend}|busy", round(min(self.busy_replica_s, self.replicas * seconds) * 1000))]


def readings(pool: UpstreamPool, pricing: Pricing, start_wall: float, end_wall: float) -> list[SlotReading]:
    """Each self-hosted backend's bill rate and busy time over [start, end) (wall-clock seconds)."""
    now = time.monotonic()
    offset = time.time() - now  # wall = monotonic + offset
    out = []
    for name, backend in pool.backends.items():
        rate = pricing.usd_per_replica_hour(name)
        if rate is None:
            continue
        busy = sum(r.window.busy_seconds(start_wall - offset, end_wall - offset, now) for r in backend.replicas)
        out.append(SlotReading(name, len(backend.replicas), rate, busy))
    return out


async def meter_slot(scripts: ScriptRunner, slot: int, seconds: float, found: Sequence[SlotReading], ttl_s: int) -> int:
    """Write the last ``seconds`` of one slot's readings, each slot's time metered once across
    workers; returns how many backends this worker added to."""
    day = meter_key(day_label(slot * SLOT_S))
    written = 0
    for reading in found:
        args: list = [CLAIM_TTL_S, ttl_s, round(seconds * 1000), *(x for pair in reading.fields(seconds) for x in pair)]
        written += int(await scripts.run(METER, [claim_key(reading.backend, slot), day], args))
    return written


async def meter_forever(scripts: ScriptRunner, pool: UpstreamPool, pricing: Pricing, ttl_s: int) -> None:
    """Meter every slot from the moment this worker started (the first one in part)."""
    started = time.time()
    slot = math.floor(started / SLOT_S)
    while True:
        await asyncio.sleep(max((slot + 1) * SLOT_S - time.time(), 0) + 0.2)  # a moment for calls ending at the edge
        begin, end = max(slot * SLOT_S, started), (slot + 1) * SLOT_S
        found = readings(pool, pricing, begin, end)
        try:
            await meter_slot(scripts, slot, end - begin, found, ttl_s)
        except (RedisError, OSError) as err:  # the slot is lost for this worker; another may have it
            log.warning("metering slot %s not written: store unreachable (%s)", slot, type(err).__name__)
        # After a stall, catch up on the slots the load windows still hold (KEEP_S), no further.
        slot = max(slot + 1, math.floor((time.time() - KEEP_S) / SLOT_S) + 1)


async def load_meter(redis: Redis, days: list[str]) -> dict[str, dict[str, dict[str, int]]]:
    """``{day: {backend: {bill, seen, busy}}}`` for the days asked."""
    async with redis.pipeline(transaction=False) as pipe:
        for day in days:
            pipe.hgetall(meter_key(day))
        replies = await pipe.execute()
    out: dict[str, dict[str, dict[str, int]]] = {}
    for day, raw in zip(days, replies, strict=True):
        per_backend: dict[str, dict[str, int]] = {}
        for field, value in raw.items():
            backend, _, metric = field.decode().rpartition("|")
            per_backend.setdefault(backend, {})[metric] = int(value)
        out[day] = per_backend
    return out
