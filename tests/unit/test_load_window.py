"""A replica's load window: the mean batch while busy, and busy seconds (pure bookkeeping, virtual time)."""

from __future__ import annotations

import random

import pytest

from gateway.upstream.load import LoadWindow, average_batch


def test_one_call_at_a_time_is_batch_one_however_long_the_pauses() -> None:
    window = LoadWindow(0.0)
    t = 0.0
    for _ in range(20):
        stint = window.begin(t)
        t += 0.8
        window.end(stint, t)
        assert window.mean_running(stint, t) == pytest.approx(1.0)
        t += random.Random(int(t * 10)).uniform(0.1, 2.0)  # pauses of any length
    assert average_batch([window], t, 60) == pytest.approx(1.0)
    assert window.integrals(t, 60)[1] == pytest.approx(16.0)  # 20 x 0.8 s busy


def test_overlapping_calls_average_over_busy_time_only() -> None:
    window = LoadWindow(0.0)
    first = window.begin(1.0)
    second = window.begin(2.0)  # two running from 2 to 3
    window.end(first, 3.0)
    window.end(second, 4.0)  # busy 1..4: 3 s, 4 sequence-seconds
    assert window.mean_running(first, 9.0) == pytest.approx(3 / 2)  # 1 s alone, 1 s with the second
    assert window.mean_running(second, 9.0) == pytest.approx(3 / 2)
    assert average_batch([window], 50.0, 60) == pytest.approx(4 / 3)
    assert average_batch([window], 100.0, 60) is None  # idle throughout the last minute
    assert window.busy_seconds(0, 10, 10.0) == pytest.approx(3.0)
    assert window.busy_seconds(2, 3, 10.0) == pytest.approx(1.0)


def test_the_engine_adds_what_other_gateways_run_and_takes_off_what_waits_in_its_queue() -> None:
    window = LoadWindow(0.0)
    ours = window.begin(0.0)
    window.engine_reading(running=5, waiting=0, now=0.0)  # four from elsewhere ...
    assert window.running == 1  # ... once could be a race with our own requests' ends
    window.engine_reading(running=5, waiting=0, now=0.0)
    assert window.running == 5  # twice in a row: they are real
    window.end(ours, 10.0)
    assert window.mean_running(ours, 10.0) == pytest.approx(5.0)
    assert window.running == 4  # the others are held until the next reading
    window.engine_reading(running=0, waiting=0, now=20.0)
    assert average_batch([window], 20.0, 60) == pytest.approx((5 * 10 + 4 * 10) / 20)
    queued = LoadWindow(0.0)
    for _ in range(8):
        queued.begin(0.0)  # never ended: only the count matters here
    queued.engine_reading(running=6, waiting=2, now=0.0)  # two of ours wait in its queue
    queued.engine_reading(running=6, waiting=2, now=1.0)
    assert queued.running == 6
    queued.engine_reading(running=7, waiting=1, now=2.0)  # one was scheduled: fewer wait at once
    assert queued.running == 7


def test_a_count_seen_by_one_reading_only_is_not_applied() -> None:
    """A poll between a request's arrival and the engine's next step sees it waiting; one between
    its last token and the gateway hearing of it sees it still running. Neither lasts."""
    window = LoadWindow(0.0)
    stints = [window.begin(0.0) for _ in range(7)]
    window.engine_reading(running=6, waiting=1, now=0.5)  # the seventh has not been scheduled yet
    window.engine_reading(running=7, waiting=0, now=1.5)
    window.engine_reading(running=8, waiting=0, now=2.5)  # one had finished; its answer is on its way
    window.engine_reading(running=7, waiting=0, now=3.5)
    assert window.mean_running(stints[0], 4.0) == pytest.approx(7.0)


def test_a_call_is_priced_at_the_batch_it_shared_whatever_came_before_or_after() -> None:
    """A trailing average would price the first calls of a burst at the idle minute before it."""
    window = LoadWindow(0.0)
    window.end(window.begin(0.0), 30.0)  # a long call alone
    burst = [window.begin(40.0) for _ in range(8)]
    for stint in burst:
        window.end(stint, 41.0)
    assert all(window.mean_running(stint, 41.0) == pytest.approx(8.0) for stint in burst)
    late = window.begin(41.0)  # still running: its own mean so far is 1 ...
    assert window.mean_running(late, 41.5, at_least_s=0.0) == pytest.approx(1.0)
    # ... but half a second is too short to judge: the last 2 s while busy (the burst) price it
    assert window.mean_running(late, 41.5) == pytest.approx(17 / 3)


def test_several_replicas_are_weighted_by_their_busy_time() -> None:
    a, b = LoadWindow(0.0), LoadWindow(0.0)
    a.end(a.begin(0.0), 10.0)  # batch 1 for 10 s
    stints = [b.begin(0.0) for _ in range(3)]
    for stint in stints:
        b.end(stint, 1.0)  # batch 3 for 1 s
    assert average_batch([a, b], 10.0, 60) == pytest.approx(13 / 11)


def test_old_buckets_leave_the_window_and_are_dropped() -> None:
    window = LoadWindow(0.0)
    stints = [window.begin(0.0) for _ in range(10)]
    for stint in stints:
        window.end(stint, 5.0)
    window.end(window.begin(100.0), 101.0)
    assert average_batch([window], 101.0, 60) == pytest.approx(1.0)
    window.end(window.begin(400.0), 400.5)
    assert len(window._buckets) <= 2


def test_an_engine_without_metrics_is_said_once_and_asked_again_only_every_minute(caplog: pytest.LogCaptureFixture) -> None:
    import asyncio

    from gateway.config import BackendConfig
    from gateway.upstream.pool import METRICS_ABSENT_RETRY_S, Backend, _poll_replica
    from gateway.upstream.transport import MockResponse, MockTransport

    answers = {"status": 404, "body": b"not found"}

    async def engine(url: str, body: bytes) -> MockResponse:
        return MockResponse(answers["status"], [answers["body"]])

    backend = Backend(BackendConfig(name="llama", kind="llamacpp", urls=["http://u:p@llama:8080/v1"]), MockTransport(engine))
    replica = backend.replicas[0]
    with caplog.at_level("INFO", logger="tollgate.upstream"):
        asyncio.run(_poll_replica(backend, replica))
        asyncio.run(_poll_replica(backend, replica))
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1 and "no engine metrics" in said[0] and "in flight" in said[0] and "u:p@" not in said[0]
    assert replica.metrics_absent and replica.metrics_due > 0.9 * METRICS_ABSENT_RETRY_S
    answers.update(status=200, body=b"vllm:num_requests_running 3\nvllm:num_requests_waiting 1\n")
    caplog.clear()
    with caplog.at_level("INFO", logger="tollgate.upstream"):
        asyncio.run(_poll_replica(backend, replica))
    assert not replica.metrics_absent and "metrics found" in caplog.records[0].getMessage()
    asyncio.run(_poll_replica(backend, replica))  # a count applies once two readings agree
    assert replica.window.running == 3  # the engine holds 4 (none of them ours), 1 of them queued


def test_an_engine_with_one_slot_runs_one_sequence_however_many_wait() -> None:
    """llama-cpp-python's server (one slot, no metrics): three requests in flight are one running
    and two queued, so each is priced at batch 1, not at 3 (which would charge a third)."""
    window = LoadWindow(0.0, max_running=1)
    stints = [window.begin(0.0) for _ in range(3)]
    assert window.running == 1
    for index, stint in enumerate(stints):
        window.end(stint, 10.0 * (index + 1))
    assert all(window.mean_running(stint, 40.0) == pytest.approx(1.0) for stint in stints)
    uncapped = LoadWindow(0.0)
    for _ in range(3):
        uncapped.begin(0.0)
    assert uncapped.running == 3


def test_the_deployments_slots_reach_every_replica() -> None:
    from gateway.config import BackendConfig
    from gateway.upstream.pool import Backend
    from gateway.upstream.transport import MockResponse, MockTransport

    async def engine(url: str, body: bytes) -> MockResponse:
        return MockResponse(404, [b""])

    config = BackendConfig(name="llama", kind="llamacpp", urls=["http://a:8080/v1", "http://b:8080/v1"],
                           deployment={"model": "llama-3.2-1b", "gpu": "l4", "max_running": 1})
    backend = Backend(config, MockTransport(engine))
    assert [r.window.max_running for r in backend.replicas] == [1, 1]
