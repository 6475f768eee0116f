"""The cascade over mock engines: why it escalates, how long a hung cheap engine costs, what it
records and which outcomes become router training labels."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from gateway import metrics
from gateway.pipeline import Answer, StreamedAnswer
from gateway.stages.accounting.record import aggregate_increments
from gateway.upstream.forwarder import UpstreamError
from gateway.upstream.transport import ConnectFailed, ReadTimedOut
from tests.support.fakes import EngineReply, FakeLabels, engine, harness, settings
from tests.support.router_data import synthetic_examples

ASK = {"model": "cascade", "messages": [{"role": "user", "content": "Hello"}]}


@pytest.fixture(scope="module")
def cascade_settings(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from router.train import fit

    artifact = tmp_path_factory.mktemp("router") / "router.json"
    fit(synthetic_examples(300)).save(artifact)
    return settings(router={"artifact": str(artifact), "cheap": "cheap", "flagship": "flagship",
                            "cascade": {"enabled": True, "holdback_tokens": 4, "first_byte_timeout_s": 0.3}})


def _serve(h: Any, body: dict[str, Any]) -> Answer:
    answer = asyncio.run(h.pipeline.serve(h.incoming(body)))
    assert isinstance(answer, Answer)
    return answer


def _stream(h: Any, body: dict[str, Any]) -> list[Any]:
    async def run() -> list[bytes]:
        answer = await h.pipeline.serve(h.incoming(body))
        assert isinstance(answer, StreamedAnswer)
        try:
            return [data async for data in answer]
        finally:
            answer.close()

    lines = [line[6:] for data in asyncio.run(run()) for line in data.decode().split("\n") if line.startswith("data: ")]
    return [line if line == "[DONE]" else json.loads(line) for line in lines]


def _sent(h: Any, backend: str) -> list[dict[str, Any]]:
    return [json.loads(body) for _, body in h.transports[backend].sent]


def test_a_whole_answer_cascade_streams_the_cheap_call_with_logprobs_and_hands_back_a_whole_answer(
        cascade_settings: Any) -> None:
    h = harness(config=cascade_settings)
    answer = _serve(h, ASK)
    [cheap] = _sent(h, "small")
    assert cheap["stream"] is True and cheap["logprobs"] is True and cheap["stream_options"]["include_usage"]
    body = answer.body
    assert body["object"] == "chat.completion" and body["model"] == "cheap" and body["id"] == "chunk-mock"
    assert body["choices"][0]["message"]["content"] == "Paris is the capital of France."
    assert "logprobs" not in body["choices"][0] and body["usage"]["completion_tokens"] == 6
    assert answer.outcome.escalated is False and answer.outcome.escalation_reason is None


@pytest.mark.parametrize("reply, reason", [
    (EngineReply(logprob=-3.0), "low_confidence"),
    (EngineReply(text="a b c", finish_reason="length"), "truncated"),  # by a limit the client did not set
    (EngineReply(text=" "), "empty"),
    (EngineReply(text="I'm sorry, I can't help with that."), "refusal"),
    (EngineReply(status=503), "cheap_failed"),
    (EngineReply(transport_error=ConnectFailed("refused")), "cheap_failed"),  # then down, below
    (EngineReply(cut_after=2), "cheap_failed"),
])
def test_each_escalation_says_why(cascade_settings: Any, reply: EngineReply, reason: str) -> None:
    labels = FakeLabels()
    h = harness({"small": engine(reply)}, config=cascade_settings, labels=labels)
    whole = _serve(h, ASK)
    assert whole.outcome.escalated and whole.outcome.escalation_reason == reason and whole.body["model"] == "flagship"
    assert h.accounting.records[0].escalation_reason == reason
    events = _stream(h, {**ASK, "stream": True})
    assert {e["model"] for e in events[:-1]} == {"flagship"} and events[-1] == "[DONE]"
    refused = isinstance(reply.transport_error, ConnectFailed)  # the replica is now down: not tried again
    assert h.accounting.records[1].escalation_reason == ("cheap_down" if refused else reason)
    infrastructure = reason.startswith("cheap_")
    assert labels.kept == ([] if infrastructure else [(0.0 if reason != "low_confidence" else pytest.approx(0.05, abs=0.01),
                                                       reason)] * 2)


def test_a_hung_cheap_engine_costs_at_most_the_first_byte_deadline_and_is_then_skipped(cascade_settings: Any) -> None:
    labels = FakeLabels()
    h = harness({"small": engine(EngineReply(delay_s=30))}, config=cascade_settings, labels=labels)
    failures = metrics.UPSTREAM_ERRORS.labels("small", "timeout")
    before = failures._value.get()
    started = time.perf_counter()
    first = _serve(h, ASK)
    took = time.perf_counter() - started
    assert first.outcome.escalation_reason == "cheap_timeout" and first.body["model"] == "flagship"
    assert took < 3  # the deadline is 0.3 s; the engine would take 30 s
    assert failures._value.get() == before + 1  # counted (and logged) once
    second = _serve(h, {**ASK, "stream": False})
    assert second.outcome.escalation_reason == "cheap_down"  # marked down: not waited on again
    assert len(h.transports["small"].sent) == 1 and labels.kept == []


@pytest.mark.parametrize("stream", [False, True])
def test_a_cheap_engine_stalled_mid_answer_costs_at_most_the_deadline_between_tokens(cascade_settings: Any,
                                                                                    stream: bool) -> None:
    h = harness({"small": engine(EngineReply(text="a b c d e f g h", stall_after=2))}, config=cascade_settings)
    started = time.perf_counter()
    if stream:
        events = _stream(h, {**ASK, "stream": True})
        assert events[0]["model"] == "flagship" and events[-1] == "[DONE]"
    else:
        assert _serve(h, ASK).body["model"] == "flagship"
    assert time.perf_counter() - started < 3  # 0.3 s between two tokens at most, not the read timeout
    record = h.accounting.records[0]
    assert record.escalation_reason == "cheap_timeout" and record.models == ["cheap", "flagship"]
    assert not h.pool.backends["small"].replicas[0].is_up(time.monotonic())


def test_a_read_timeout_marks_the_replica_down_like_a_refused_connection(cascade_settings: Any) -> None:
    h = harness({"small": engine(EngineReply(transport_error=ReadTimedOut("read timed out")))}, config=cascade_settings)
    _serve(h, ASK)
    [replica] = h.pool.backends["small"].replicas
    assert not replica.is_up(time.monotonic())
    assert _serve(h, ASK).outcome.escalation_reason == "cheap_down"


def test_an_answer_capped_by_the_client_within_the_hold_back_is_judged_by_its_logprobs(cascade_settings: Any) -> None:
    """max_tokens at most the hold-back: the stream is read to its end and judged whole, as a whole
    answer would be; the client's own cap is not a reason to escalate."""
    unsure = EngineReply(text="one two three four", logprob=-3.0, finish_reason="length")
    h = harness({"small": engine(unsure)}, config=cascade_settings)
    events = _stream(h, {**ASK, "stream": True, "max_tokens": 4})
    assert h.accounting.records[0].escalation_reason == "low_confidence" and events[0]["model"] == "flagship"
    sure = harness({"small": engine(EngineReply(text="one two three four", finish_reason="length"))},
                   config=cascade_settings)
    events = _stream(sure, {**ASK, "stream": True, "max_tokens": 4})
    record = sure.accounting.records[0]
    assert not record.escalated and 0.9 < record.cascade_confidence < 1.0 and events[0]["model"] == "cheap"


def test_an_escalated_cascade_counts_in_both_model_rows_with_its_own_tokens_and_cost(cascade_settings: Any) -> None:
    h = harness({"small": engine(EngineReply(logprob=-3.0, text="a b c"))}, config=cascade_settings)
    _serve(h, ASK)
    record = h.accounting.records[0]
    cheap, flagship = record.parts
    assert (cheap.model, cheap.completion_tokens, flagship.model, flagship.completion_tokens) == ("cheap", 3, "flagship", 6)
    assert cheap.cost_usd + flagship.cost_usd == pytest.approx(record.cost_usd)
    fields = dict(aggregate_increments(record))
    assert fields["model|cheap|req"] == fields["model|flagship|req"] == fields["all|*|req"] == 1
    assert (fields["model|cheap|ct"], fields["model|flagship|ct"], fields["all|*|ct"]) == (3, 6, 9)
    assert fields["model|cheap|esc"] == 1 and "model|flagship|esc" not in fields and fields["route|cascade|esc"] == 1
    assert "model|cheap|flag" not in fields  # the flagship-only counterfactual belongs to the answer's row
    assert fields["model|cheap|cost"] + fields["model|flagship|cost"] == fields["all|*|cost"]


def test_a_failed_call_counts_in_the_row_of_its_model_and_a_cut_stream_is_an_error() -> None:
    h = harness({"small": engine(EngineReply(status=503))})
    with pytest.raises(UpstreamError):
        _serve(h, {"model": "cheap", "messages": [{"role": "user", "content": "Hi"}]})
    fields = dict(aggregate_increments(h.accounting.records[0]))
    assert fields["model|cheap|err"] == 1 and "model|-|req" not in fields
    cut = harness({"small": engine(EngineReply(cut_after=3))})
    _stream(cut, {"model": "cheap", "messages": [{"role": "user", "content": "Hi"}], "stream": True})
    record = cut.accounting.records[0]
    assert (record.status, record.error_code) == (200, "upstream_disconnected")
    assert dict(aggregate_increments(record))["all|*|err"] == 1


def test_a_stream_the_client_left_or_the_engine_cut_is_no_label(cascade_settings: Any) -> None:
    labels = FakeLabels()
    h = harness({"small": engine(EngineReply(text="a b c d e f g h i j", cut_after=8))}, config=cascade_settings,
                labels=labels)
    events = _stream(h, {**ASK, "stream": True})
    assert "error" in events[-1] and labels.kept == []
