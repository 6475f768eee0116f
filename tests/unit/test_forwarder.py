"""Forwarding: retries over replicas and fallbacks, what a failure means, and the relay of a stream."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from gateway.upstream.forwarder import Forwarder, UpstreamError
from gateway.upstream.pool import UpstreamPool
from gateway.upstream.relay import Relay, RelayRules
from gateway.upstream.transport import MockResponse, MockTransport, ReadTimedOut
from moderation import policy
from moderation.stream import StreamFilter
from tests.support.fakes import EngineReply, engine, settings

BODY = {"model": "mini", "messages": [{"role": "user", "content": "hi"}]}


def _pool(handler: Any) -> UpstreamPool:
    config = settings()
    return UpstreamPool(config, {b.name: MockTransport(handler) for b in config.backends})  # type: ignore[misc]


def test_a_5xx_moves_on_to_the_next_replica_and_every_failure_is_counted() -> None:
    from gateway import metrics

    seen: list[str] = []

    async def handler(url: str, body: bytes) -> MockResponse:
        seen.append(url)
        return await engine(EngineReply(status=503) if "api-a" in url else EngineReply())(url, body)

    pool = _pool(handler)
    before = metrics.UPSTREAM_ERRORS.labels("api", "http_503")._value.get()
    reply = asyncio.run(Forwarder(pool).whole(pool.resolve("mini"), "/chat/completions", BODY, "r", None, 5))
    assert reply.served.replica.url == "http://api-b:80/v1" and len(seen) <= 2
    assert metrics.UPSTREAM_ERRORS.labels("api", "http_503")._value.get() - before == (1 if len(seen) == 2 else 0)


def test_every_failed_attempt_is_counted_and_logged_at_most_once_per_backend_and_reason(
        caplog: pytest.LogCaptureFixture) -> None:
    from gateway import metrics

    pool = _pool(engine(EngineReply(transport_error=ReadTimedOut("read timed out"))))
    forwarder = Forwarder(pool)
    before = metrics.UPSTREAM_ERRORS.labels("api", "timeout")._value.get()
    with caplog.at_level("WARNING", logger="tollgate.upstream"):
        for _ in range(8):  # two replicas each: 16 failed attempts
            for replica in pool.backends["api"].replicas:
                replica.down_until = 0.0  # timeouts mark replicas down; try them again anyway
            with pytest.raises(UpstreamError):
                asyncio.run(forwarder.whole(pool.resolve("mini"), "/chat/completions", BODY, "r", None, 5))
    assert metrics.UPSTREAM_ERRORS.labels("api", "timeout")._value.get() - before == 16
    lines = [r.getMessage() for r in caplog.records if "upstream attempt failed" in r.getMessage()]
    assert len(lines) == 1 and "backend api" in lines[0] and "sk-secret" not in lines[0]


def test_no_replica_left_is_a_502_naming_each_failure_and_silence_everywhere_a_504() -> None:
    pool = _pool(engine(EngineReply(status=500)))
    with pytest.raises(UpstreamError) as failed:
        asyncio.run(Forwarder(pool).whole(pool.resolve("mini"), "/chat/completions", BODY, "r", None, 5))
    assert failed.value.status == 502 and failed.value.message.count("HTTP 500") == 2
    pool = _pool(engine(EngineReply(transport_error=ReadTimedOut("timed out"))))
    with pytest.raises(UpstreamError) as slow:
        asyncio.run(Forwarder(pool).whole(pool.resolve("mini"), "/chat/completions", BODY, "r", None, 5))
    assert slow.value.status == 504 and slow.value.code == "upstream_timeout"


def test_the_request_deadline_bounds_every_attempt() -> None:
    async def hang(url: str, body: bytes) -> MockResponse:
        await asyncio.sleep(10)
        raise AssertionError

    pool = _pool(hang)
    started = time.monotonic()
    with pytest.raises(UpstreamError) as caught:
        asyncio.run(Forwarder(pool).whole(pool.resolve("mini"), "/chat/completions", BODY, "r", None, 0.2))
    assert caught.value.status == 504 and time.monotonic() - started < 2


def test_an_answer_that_is_not_json_is_a_502() -> None:
    async def garbage(url: str, body: bytes) -> MockResponse:
        return MockResponse(200, [b"<html>oops</html>"])

    pool = _pool(garbage)
    with pytest.raises(UpstreamError) as caught:
        asyncio.run(Forwarder(pool).whole(pool.resolve("mini"), "/chat/completions", BODY, "r", None, 5))
    assert caught.value.status == 502 and caught.value.code == "upstream_invalid_response"


def test_credentials_of_the_provider_never_reach_the_client() -> None:
    error = {"error": {"message": "invalid key sk-secret-provider-key"}}
    pool = _pool(engine(EngineReply(status=401, error=error)))
    with pytest.raises(UpstreamError) as caught:
        asyncio.run(Forwarder(pool).whole(pool.resolve("mini"), "/chat/completions", BODY, "r", None, 5))
    assert caught.value.status == 502 and caught.value.code == "upstream_auth_failed"
    assert "sk-secret" not in caught.value.message


def _relay_events(reply: EngineReply, rules: dict[str, Any], window: StreamFilter | None = None) -> tuple[list[Any], Any]:
    pool = _pool(engine(reply))

    async def run() -> tuple[list[bytes], Any]:
        stream = await Forwarder(pool).open_stream(pool.resolve("mini"), "/chat/completions", {**BODY, "stream": True},
                                                   "r", None, 5)
        relay = Relay(stream, RelayRules(**{"model": "mini", "endpoint": "/chat/completions", "include_usage": False,
                                            "strip_logprobs": False, "started": time.perf_counter(),
                                            "deadline": time.perf_counter() + 5, **rules}), BODY, window)
        out = [data async for data in relay]
        return out, relay.close()

    out, end = asyncio.run(run())
    lines = [line[6:] for data in out for line in data.decode().split("\n") if line.startswith("data: ")]
    return [line if line == "[DONE]" else json.loads(line) for line in lines], end


def test_the_relay_strips_logprobs_the_gateway_asked_for() -> None:
    events, end = _relay_events(EngineReply(), {"strip_logprobs": True})
    assert all("logprobs" not in c for e in events[:-1] for c in e["choices"]) and end.error_code is None


def test_the_moderation_window_ends_a_stream_with_a_content_filter_finish() -> None:
    rules = policy.build({"output": {"pii": "block"}})
    events, end = _relay_events(EngineReply(text="mail me at bob@example.com please"), {}, StreamFilter(rules, 16))
    assert events[-2]["choices"][0]["finish_reason"] == "content_filter" and events[-1] == "[DONE]"
    assert "bob@" not in json.dumps(events) and end.error_code == "content_filter"


def test_a_stream_past_the_deadline_ends_with_an_error_event() -> None:
    events, end = _relay_events(EngineReply(), {"deadline": time.perf_counter() - 1})
    assert events[-1]["error"]["code"] == "upstream_timeout" and end.error_code == "upstream_timeout"
