"""The GPU bill's metering: each slot's time is metered once, whatever the number of workers."""

from __future__ import annotations

import asyncio
import time

from gateway.stages.accounting.metering import SLOT_S, SlotReading, load_meter, meter_slot
from gateway.stages.accounting.periods import day_label
from gateway.store.fast_redis import ScriptRunner
from gateway.store.redis import redis_client


def test_a_slot_is_metered_once_and_a_worker_that_saw_more_of_it_adds_only_the_rest(valkey: str) -> None:
    async def run() -> None:
        redis = redis_client(valkey)
        scripts = ScriptRunner(redis, valkey, 1.0)
        backend = f"gpu-{time.time_ns()}"
        slot = int(time.time() // SLOT_S) - 1
        reading = SlotReading(backend, replicas=2, usd_per_replica_hour=3.6, busy_replica_s=5.0)
        assert await meter_slot(scripts, slot, 4.0, [reading], 3600) == 1  # started 6 s into the slot
        assert await meter_slot(scripts, slot, 4.0, [reading], 3600) == 0  # a second worker, same view
        assert await meter_slot(scripts, slot, 10.0, [reading], 3600) == 1  # one that saw the whole slot
        assert await meter_slot(scripts, slot, 10.0, [reading], 3600) == 0
        day = day_label(slot * SLOT_S)
        metered = (await load_meter(redis, [day]))[day][backend]
        assert metered["seen"] == 2 * 10 * 1000  # two replicas, the slot once
        assert metered["bill"] == round(2 * 3.6 * 10 / 3600 * 1e9)  # $0.02
        assert metered["busy"] <= metered["seen"]
        await redis.aclose()

    asyncio.run(run())
