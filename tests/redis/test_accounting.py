"""Admission and ledger scripts against a real Valkey server: atomicity, settlement, spool replay."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
import redis as sync_redis

from gateway.errors import APIError
from gateway.stages.accounting import periods
from gateway.stages.accounting.admission import Admission
from gateway.stages.accounting.ledger import Ledger, stream_key
from gateway.stages.accounting.limits import CallerLimits, LimitSet, checks_for
from gateway.stages.accounting.record import CallRecord
from gateway.stages.accounting.scripts import LUA_PERIODS
from gateway.store.fast_redis import ScriptRunner
from gateway.store.redis import redis_client
from tests.support.processes import free_port


def test_lua_month_arithmetic_matches_python(valkey: str) -> None:
    client = sync_redis.Redis.from_url(valkey)
    script = LUA_PERIODS + "local out = {} for i, d in ipairs(ARGV) do out[i] = month_index(tonumber(d)) end return out"
    days = [-1, 0, 58, 59, 10_956, 11_016, 11_017, 20_513, 20_514, 47_482, 2_932_896]
    assert client.eval(script, 0, *days) == [periods.month_index(d) for d in days]


def _scripts(redis, url: str) -> ScriptRunner:
    return ScriptRunner(redis, url, 1.0)


def _ledger(redis, tmp_path: Path, url: str) -> Ledger:
    return Ledger(redis, _scripts(redis, url), tmp_path / "spool", max_records=10_000, retention_days=30,
                  dedupe_ttl_s=600)


def test_concurrent_admissions_never_exceed_a_limit(valkey: str) -> None:
    if time.time() % 60 > 55:  # start inside one minute window: the run takes well under a second
        time.sleep(60.5 - time.time() % 60)

    async def run() -> tuple[int, int]:
        redis = redis_client(valkey)
        admission = Admission(_scripts(redis, valkey), fail_open=False, hold_ttl_s=60)
        limits = CallerLimits(LimitSet(rpm=37), LimitSet())
        tenant = f"race-{time.time_ns()}"

        async def one() -> bool:
            try:
                await admission.admit(checks_for(limits, tenant, "k", 1, 0), tenant, "r")
                return True
            except APIError as err:
                assert err.status == 429 and err.code == "rate_limit_exceeded"
                return False

        outcomes = await asyncio.gather(*(one() for _ in range(120)))
        await redis.aclose()
        return sum(outcomes), len(outcomes)

    admitted, total = asyncio.run(run())
    if time.time() % 60 > 58:  # the run straddled a minute boundary: a second window opened
        pytest.skip("crossed a minute boundary")
    assert admitted == 37 and total == 120


def test_budget_holds_the_maximum_and_settles_the_real_cost(valkey: str, tmp_path: Path) -> None:
    async def run() -> None:
        redis = redis_client(valkey)
        admission, ledger = Admission(_scripts(redis, valkey), fail_open=False, hold_ttl_s=60), _ledger(redis, tmp_path, valkey)
        tenant = f"budget-{time.time_ns()}"
        limits = CallerLimits(LimitSet(daily_usd=1.0), LimitSet())
        first = await admission.admit(checks_for(limits, tenant, "k", 10, 0.6), tenant, "req-1")
        with pytest.raises(APIError) as rejected:  # 0.6 held + 0.6 > 1.0
            await admission.admit(checks_for(limits, tenant, "k", 10, 0.6), tenant, "req-2")
        assert rejected.value.code == "insufficient_quota" and "retry-after" in rejected.value.headers
        record = CallRecord("req-1", time.time(), tenant, "k", "/chat/completions", "m", model="m", cost_usd=0.05)
        await ledger.write(record, first.settlements(15, 0.05))
        state = await redis.hgetall(first.checks[0].key)
        assert int(state[b"held"]) == 0 and int(state[b"used"]) == 50_000_000
        await admission.admit(checks_for(limits, tenant, "k", 10, 0.6), tenant, "req-3")  # now it fits
        await redis.aclose()

    asyncio.run(run())


def test_a_hold_never_recorded_expires_and_a_late_record_does_not_release_it_twice(valkey: str, tmp_path: Path) -> None:
    """A gateway that dies mid-call never records it: its hold must not block the budget for the day."""
    async def run() -> None:
        redis = redis_client(valkey)
        admission, ledger = Admission(_scripts(redis, valkey), fail_open=False, hold_ttl_s=2), _ledger(redis, tmp_path, valkey)
        tenant = f"orphan-{time.time_ns()}"
        limits = CallerLimits(LimitSet(daily_usd=1.0), LimitSet(monthly_usd=5.0))
        orphan = await admission.admit(checks_for(limits, tenant, "k", 10, 0.6), tenant, "orphan")
        with pytest.raises(APIError):
            await admission.admit(checks_for(limits, tenant, "k", 10, 0.6), tenant, "too-early")
        await asyncio.sleep(3.2)  # past the hold's deadline (whole seconds of Redis TIME)
        later = await admission.admit(checks_for(limits, tenant, "k", 10, 0.6), tenant, "later")
        for check in later.checks:
            state = await redis.hgetall(check.key)
            assert int(state[b"held"]) == 600_000_000 and await redis.zcard(f"{check.key}:h") == 1
        # The orphan's record arrives after all (a spool replay): its cost counts, its hold is not released again.
        await ledger.write(CallRecord("orphan", time.time(), tenant, "k", "/chat/completions", "m", cost_usd=0.1),
                           orphan.settlements(15, 0.1))
        await ledger.write(CallRecord("later", time.time(), tenant, "k", "/chat/completions", "m", cost_usd=0.2),
                           later.settlements(15, 0.2))
        for check in later.checks:
            state = await redis.hgetall(check.key)
            assert int(state[b"held"]) == 0 and int(state[b"used"]) == 300_000_000
            assert await redis.zcard(f"{check.key}:h") == 0
        await redis.aclose()

    asyncio.run(run())


def test_records_spool_while_redis_is_unreachable_and_replay_once(valkey: str, tmp_path: Path) -> None:
    async def run() -> None:
        dead_url = f"redis://127.0.0.1:{free_port()}/0"
        dead = redis_client(dead_url)
        live = redis_client(valkey)
        tenant = f"spool-{time.time_ns()}"
        down = _ledger(dead, tmp_path, dead_url)
        for i in range(5):
            await down.write(CallRecord(f"{tenant}-{i}", time.time(), tenant, "k", "/completions", "m", cost_usd=0.001), [])
        assert down.spool.pending()
        await dead.aclose()
        up = _ledger(live, tmp_path, valkey)  # another worker adopts the file of a dead one: here, the same pid
        assert await up.replay() == 5
        assert not up.spool.pending()
        assert await live.xlen(stream_key(tenant)) == 5
        # A replay of records already written (the first write's answer was lost) adds nothing.
        for i in range(5):
            up.spool.append(CallRecord(f"{tenant}-{i}", time.time(), tenant, "k", "/completions", "m").to_json()
                            .join([b'{"record":', b',"settle":[]}']))
        await up.replay()
        assert await live.xlen(stream_key(tenant)) == 5
        await live.aclose()

    asyncio.run(run())


def test_the_record_script_adds_exactly_the_reference_aggregates(valkey: str, tmp_path: Path) -> None:
    from gateway.stages.accounting.ledger import aggregate_key
    from gateway.stages.accounting.record import Part, aggregate_increments

    async def run() -> None:
        redis = redis_client(valkey)
        tenant = f"agg-{time.time_ns()}"
        ledger = _ledger(redis, tmp_path, valkey)
        plain = CallRecord(f"{tenant}-1", time.time(), tenant, "k9", "/chat/completions", "auto", model="cheap",
                           backend="small", route="router", prompt_tokens=12, cached_tokens=4, completion_tokens=7, cost_usd=0.0125,
                           flagship_cost_usd=0.05)
        escalated = CallRecord(f"{tenant}-2", time.time(), tenant, "k9", "/chat/completions", "cascade", model="flagship",
                               route="cascade", prompt_tokens=24, completion_tokens=19, cost_usd=0.03,
                               flagship_cost_usd=0.02, escalated=True,
                               parts=[Part("cheap", "small", 12, 0, 7, 0.01), Part("flagship", "large", 12, 0, 12, 0.02)])
        failed = CallRecord(f"{tenant}-3", time.time(), tenant, "k8", "/chat/completions", "cheap", routed_model="cheap",
                            status=502, error_code="upstream_unavailable")
        expected: dict[str, int] = {}
        for record in (plain, escalated, failed):
            await ledger.write(record, [])
            for field, amount in aggregate_increments(record):
                expected[field] = expected.get(field, 0) + amount
        stored = await redis.hgetall(aggregate_key(tenant, periods.day_label(plain.ts)))
        assert {k.decode(): int(v) for k, v in stored.items()} == expected
        assert expected["model|cheap|req"] == 3 and expected["model|cheap|esc"] == 1 and expected["model|cheap|err"] == 1
        assert expected["backend|small|cost"] == 22_500_000 and expected["backend|large|cost"] == 20_000_000
        assert expected["backend|small|req"] == 2 and "backend||req" not in expected  # the failed call ran nowhere
        await redis.aclose()

    asyncio.run(run())


def test_the_ledger_says_what_it_trimmed(valkey: str, tmp_path: Path) -> None:
    """An archiver resuming from an id Redis no longer holds must learn that records may be gone."""
    from gateway.cli.ledger_archive import trim_warning

    async def run() -> None:
        redis = redis_client(valkey)
        ledger = Ledger(redis, _scripts(redis, valkey), tmp_path / "spool", max_records=10, retention_days=30,
                        dedupe_ttl_s=600)
        tenant = f"trim-{time.time_ns()}"
        assert await ledger.retention(tenant) == (None, 0)
        for i in range(300):
            await ledger.write(CallRecord(f"{tenant}-{i}", time.time(), tenant, "k", "/completions", "m"), [])
        first_page, _ = await ledger.records(tenant, 0, 2**53, None, 1)
        oldest, trimmed = await ledger.retention(tenant)
        length = await redis.xlen(stream_key(tenant))
        assert oldest == first_page[0]["ledger_id"] and trimmed == 300 - length > 0
        assert first_page[0]["request_id"] == f"{tenant}-{trimmed}"
        assert trim_warning(None, oldest, trimmed) and trim_warning("1-0", oldest, trimmed)
        await redis.aclose()

    asyncio.run(run())


def test_an_admission_given_up_on_is_settled_once_and_a_late_one_changes_nothing(valkey: str, tmp_path: Path) -> None:
    """Redis stalled past the gateway's timeout: the admission still ran, the gateway admitted the call
    as unreserved; the record settles it from what Redis reserved. An admission arriving after its
    call's record is a no-op."""
    from gateway.stages.accounting.admission import Ticket

    async def run() -> None:
        redis = redis_client(valkey)
        admission, ledger = Admission(_scripts(redis, valkey), fail_open=True, hold_ttl_s=60), _ledger(redis, tmp_path, valkey)
        tenant = f"stall-{time.time_ns()}"
        limits = CallerLimits(LimitSet(rpm=1000, tpm=100_000, daily_usd=1.0), LimitSet())
        checks = checks_for(limits, tenant, "k", 500, 0.3)
        await admission.admit(checks, tenant, "slow")  # ran in Redis...
        given_up = Ticket(checks)  # ...but the gateway had timed out and admitted it unreserved
        await ledger.write(CallRecord("slow", time.time(), tenant, "k", "/chat/completions", "m", prompt_tokens=20,
                                      completion_tokens=30, cost_usd=0.01), given_up.settlements(50, 0.01))
        rpm, tpm, budget = ([await redis.hgetall(c.key) for c in checks])
        assert int(rpm[b"used"]) == 1 and int(tpm[b"used"]) == 50
        assert int(budget[b"held"]) == 0 and int(budget[b"used"]) == 10_000_000
        assert await redis.zcard(f"{checks[2].key}:h") == 0
        late = await admission.admit(checks, tenant, "slow")  # the same call's admission, after its record
        assert late.now_s == 0
        rpm, tpm, budget = ([await redis.hgetall(c.key) for c in checks])
        assert int(rpm[b"used"]) == 1 and int(tpm[b"used"]) == 50 and int(budget[b"held"]) == 0
        await redis.aclose()

    asyncio.run(run())
