"""The request path in one process: the pipeline over mock engines, through the transport seam."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from gateway.errors import APIError
from gateway.pipeline import Answer, StreamedAnswer
from gateway.stages.router import Router
from gateway.upstream.transport import ConnectFailed
from tests.support.fakes import EngineReply, FakeAccounting, engine, harness, settings
from tests.support.router_data import synthetic_examples

HELLO = {"model": "cheap", "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 20}


def _serve(h: Any, body: dict[str, Any], **kwargs: Any) -> Answer | StreamedAnswer:
    return asyncio.run(h.pipeline.serve(h.incoming(body, **kwargs)))


def _stream(h: Any, body: dict[str, Any], stop_after: int | None = None) -> list[bytes]:
    """Serve a streamed request and read it, in one event loop (as a server would)."""

    async def run() -> list[bytes]:
        answer = await h.pipeline.serve(h.incoming(body))
        assert isinstance(answer, StreamedAnswer)
        return await _drain(answer, stop_after)

    return asyncio.run(run())


async def _drain(answer: StreamedAnswer, stop_after: int | None = None) -> list[bytes]:
    received = []
    try:
        async for data in answer:
            received.append(data)
            if stop_after is not None and len(received) >= stop_after:
                break
    finally:
        answer.close()
    return received


def _events(received: list[bytes]) -> list[Any]:
    lines = [line[6:] for data in received for line in data.decode().split("\n") if line.startswith("data: ")]
    return [line if line == "[DONE]" else json.loads(line) for line in lines]


def test_a_whole_answer_is_forwarded_priced_and_recorded_once() -> None:
    h = harness()
    answer = _serve(h, HELLO)
    assert isinstance(answer, Answer) and answer.body["model"] == "cheap"
    sent = json.loads(h.transports["small"].sent[0][1])
    assert sent["model"] == "m-small" and sent["messages"] == HELLO["messages"]  # the client's JSON, renamed
    [record] = h.accounting.records
    assert (record.status, record.model, record.backend, record.route) == (200, "cheap", "small", "direct")
    assert record.cost_usd > 0 and record.flagship_cost_usd > record.cost_usd and record.cost_source == "roofline"
    assert record.completion_tokens == 6 and record.upstream_ms is not None


def test_a_stream_is_relayed_and_recorded_when_it_ends() -> None:
    h = harness()
    answer = _serve(h, {**HELLO, "stream": True, "stream_options": {"include_usage": True}})
    assert isinstance(answer, StreamedAnswer) and not h.accounting.records  # recorded at the end, not before
    answer.close()
    h.accounting.records.clear()
    events = _events(_stream(h, {**HELLO, "stream": True, "stream_options": {"include_usage": True}}))
    assert events[-1] == "[DONE]" and all(e["model"] == "cheap" for e in events[:-1])
    assert events[-2]["usage"]["completion_tokens"] == 6
    [record] = h.accounting.records
    assert record.stream and record.error_code is None and record.ttft_ms is not None and record.cost_usd > 0


def test_a_usage_chunk_the_client_did_not_ask_for_is_dropped() -> None:
    h = harness()
    events = _events(_stream(h, {**HELLO, "stream": True}))
    assert all("usage" not in e for e in events[:-1])
    assert json.loads(h.transports["small"].sent[0][1])["stream_options"] == {"include_usage": True}  # asked upstream
    assert h.accounting.records[0].completion_tokens == 6  # and billed from it


def test_an_engine_that_ignores_include_usage_gets_an_estimate_in_the_streams_own_envelope() -> None:
    h = harness({"small": engine(EngineReply(usage=False))})
    events = _events(_stream(h, {**HELLO, "stream": True, "stream_options": {"include_usage": True}}))
    usage_chunk = events[-2]
    assert usage_chunk["choices"] == [] and usage_chunk["usage"]["estimated"] is True
    assert (usage_chunk["id"], usage_chunk["created"], usage_chunk["model"]) == ("chunk-mock", 7, "cheap")


def test_a_client_that_leaves_before_the_first_byte_still_leaves_a_record() -> None:
    h = harness()
    answer = _serve(h, {**HELLO, "stream": True})
    assert isinstance(answer, StreamedAnswer)
    answer.close()
    answer.close()  # closing twice records once
    [record] = h.accounting.records
    assert record.error_code == "client_disconnected" and record.completion_tokens == 0
    assert h.pool.backends["small"].replicas[0].inflight == 0


def test_a_client_that_leaves_mid_stream_is_billed_for_what_was_generated() -> None:
    h = harness()
    _stream(h, {**HELLO, "stream": True}, stop_after=3)
    [record] = h.accounting.records
    assert record.error_code == "client_disconnected" and 0 < record.completion_tokens < 6 and record.usage_estimated


def test_a_stream_broken_after_its_first_byte_ends_with_an_error_event() -> None:
    h = harness({"small": engine(EngineReply(cut_after=3))})
    events = _events(_stream(h, {**HELLO, "stream": True}))
    assert events[-1]["error"]["code"] == "upstream_disconnected"
    assert h.accounting.records[0].error_code == "upstream_disconnected"


def test_a_whole_answer_cut_mid_body_is_retried_on_the_next_replica() -> None:
    calls = {"n": 0}

    def first_cut(request: dict[str, Any]) -> EngineReply:
        calls["n"] += 1
        return EngineReply(cut_after=1 if calls["n"] == 1 else None)

    h = harness({"api": engine(first_cut)})
    answer = _serve(h, {**HELLO, "model": "mini"})
    assert isinstance(answer, Answer) and calls["n"] == 2
    assert h.accounting.records[0].status == 200


def test_refusals_before_forwarding_are_recorded_with_what_was_known() -> None:
    h = harness()
    for body, status in (({"model": "nope", "messages": HELLO["messages"]}, 404),
                         ({"model": "cheap", "messages": HELLO["messages"], "temperature": 9}, 400)):
        with pytest.raises(APIError) as caught:
            _serve(h, body)
        assert caught.value.status == status
    assert [(r.requested_model, r.status, r.error_code) for r in h.accounting.records] == [
        ("nope", 404, "model_not_found"), ("cheap", 400, "invalid_value")]
    assert not h.transports["small"].sent


def test_an_unauthenticated_call_reads_no_body_and_leaves_no_record() -> None:
    h = harness()

    async def never() -> dict[str, Any]:
        raise AssertionError("the body of an unauthenticated request must not be read")

    incoming = h.incoming(HELLO, key=None)
    with pytest.raises(APIError) as caught:
        asyncio.run(h.pipeline.serve(type(incoming)(incoming.request_id, incoming.endpoint, None, None, never)))
    assert caught.value.status == 401 and not h.accounting.records


def test_a_refused_admission_is_a_429_and_nothing_is_sent() -> None:
    h = harness(accounting=FakeAccounting(refuse=APIError(429, "budget", code="insufficient_quota")))
    with pytest.raises(APIError):
        _serve(h, HELLO)
    assert h.accounting.records[0].status == 429 and not h.transports["small"].sent


def test_an_upstream_4xx_goes_back_to_the_client_without_the_providers_key() -> None:
    error = {"error": {"message": "Incorrect API key provided: sk-secret-provider-key", "code": "bad_key"}}
    h = harness({"api": engine(EngineReply(status=400, error=error))})
    with pytest.raises(APIError) as caught:
        _serve(h, {**HELLO, "model": "mini"})
    assert caught.value.status == 400 and "sk-secret" not in caught.value.message and "***" in caught.value.message
    record = h.accounting.records[0]
    assert record.status == 400 and record.models == ["mini"] and record.model == ""


def test_a_refused_connection_moves_to_the_next_replica_and_marks_the_first_down() -> None:
    calls: list[str] = []

    async def handler(url: str, body: bytes) -> Any:
        calls.append(url)
        if "api-a" in url:
            raise ConnectFailed("refused")
        return await engine()(url, body)

    h = harness({"api": handler})
    for _ in range(2):
        _serve(h, {**HELLO, "model": "mini"})
    assert calls.count("http://api-a:80/v1/chat/completions") == 1  # skipped while it is down


def test_the_input_policy_redacts_before_anything_is_sent() -> None:
    h = harness()
    _serve(h, {**HELLO, "messages": [{"role": "user", "content": "why does AKIAIOSFODNN7EXAMPLE fail?"}]})
    sent = json.loads(h.transports["small"].sent[0][1])
    assert sent["messages"][0]["content"] == "why does [AWS_KEY] fail?"
    assert h.accounting.records[0].moderation == "redact"


def test_a_blocking_policy_refuses_and_records_what_it_found() -> None:
    h = harness(config=settings(moderation={"input": {"pii": "block"}}))
    with pytest.raises(APIError) as caught:
        _serve(h, {**HELLO, "messages": [{"role": "user", "content": "mail bob@example.com"}]})
    assert caught.value.code == "content_policy_violation"
    record = h.accounting.records[0]
    assert (record.moderation, record.moderation_categories) == ("block", ["pii"]) and not h.transports["small"].sent


def test_an_output_policy_redacts_whole_answers() -> None:
    h = harness({"small": engine(EngineReply(text="write to alice@example.com today"))},
                config=settings(moderation={"output": {"pii": "redact"}}))
    answer = _serve(h, HELLO)
    assert isinstance(answer, Answer) and "[EMAIL]" in answer.body["choices"][0]["message"]["content"]
    assert h.accounting.records[0].moderation_categories == ["pii"]


@pytest.fixture(scope="module")
def router_settings(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from router.train import fit

    artifact = tmp_path_factory.mktemp("router") / "router.json"
    fit(synthetic_examples(300)).save(artifact)
    return settings(router={"artifact": str(artifact), "cheap": "cheap", "flagship": "flagship",
                            "cascade": {"enabled": True, "holdback_tokens": 3}})


def test_a_sure_cheap_answer_is_kept_by_the_cascade(router_settings: Any) -> None:
    h = harness(config=router_settings)
    answer = _serve(h, {**HELLO, "model": "cascade"})
    assert isinstance(answer, Answer) and answer.outcome.escalated is False and answer.outcome.confidence > 0.9
    assert "logprobs" not in answer.body["choices"][0]  # asked for by the gateway, removed again
    record = h.accounting.records[0]
    assert record.route == "cascade" and record.models == ["cheap"] and not h.transports["large"].sent


def test_an_unsure_cheap_answer_escalates_and_both_calls_are_billed(router_settings: Any) -> None:
    h = harness({"small": engine(EngineReply(logprob=-3.0))}, config=router_settings)
    answer = _serve(h, {**HELLO, "model": "cascade"})
    assert isinstance(answer, Answer) and answer.outcome.escalated and answer.body["model"] == "flagship"
    record = h.accounting.records[0]
    assert record.models == ["cheap", "flagship"] and record.completion_tokens == 12
    assert record.cost_usd > record.flagship_cost_usd  # paying for both costs more than the flagship alone


def test_a_cascaded_stream_holds_back_and_switches_to_the_flagship(router_settings: Any) -> None:
    h = harness({"small": engine(EngineReply(logprob=-3.0))}, config=router_settings)
    events = _events(_stream(h, {**HELLO, "model": "cascade", "stream": True}))
    assert {e["model"] for e in events[:-1]} == {"flagship"} and events[-1] == "[DONE]"
    record = h.accounting.records[0]
    assert record.models == ["cheap", "flagship"] and record.escalated
    assert record.completion_tokens > 6  # the cheap tokens generated before the switch are billed too


def test_a_failed_cheap_call_escalates(router_settings: Any) -> None:
    h = harness({"small": engine(EngineReply(status=503))}, config=router_settings)
    answer = _serve(h, {**HELLO, "model": "cascade"})
    assert isinstance(answer, Answer) and answer.outcome.escalated and answer.outcome.confidence == 0.0


def test_auto_routes_by_the_learned_score(router_settings: Any) -> None:
    h = harness(config=router_settings)
    answer = _serve(h, {"model": "router:0.0", "messages": [{"role": "user", "content": "prove the theorem"}]})
    assert isinstance(answer, Answer) and answer.body["model"] == "flagship"
    assert h.accounting.records[0].route == "router" and h.accounting.records[0].router_threshold == 0.0


def test_without_a_router_auto_is_a_clear_404() -> None:
    h = harness()
    with pytest.raises(APIError) as caught:
        _serve(h, {**HELLO, "model": "auto"})
    assert caught.value.status == 404 and "router" in caught.value.message


def test_the_router_stage_routes_named_models_directly_and_several_answers_without_the_cascade(router_settings: Any) -> None:
    from gateway.upstream.pool import UpstreamPool

    router = Router(UpstreamPool(router_settings), router_settings.router, redis=None)  # type: ignore[arg-type]
    assert router.route("cheap", HELLO, "t", True).kind == "direct"
    assert router.route("cascade", HELLO, "t", True).kind == "cascade"
    several = router.route("cascade", HELLO, "t", False)
    assert several.kind == "router" and several.escalation is None and several.route.model == "cheap"
    with pytest.raises(APIError) as caught:
        router.route("router:2", HELLO, "t", True)
    assert caught.value.status == 400 and caught.value.param == "model"


def test_any_failure_after_admission_still_leaves_its_record() -> None:
    """A bug, say: the reservation must be settled, so the call is recorded (as a 500) before it goes up."""
    async def broken(url: str, body: bytes) -> Any:
        raise RuntimeError("a bug")

    h = harness({"small": broken})
    with pytest.raises(RuntimeError):
        _serve(h, HELLO)
    [record] = h.accounting.records
    assert (record.status, record.error_code) == (500, "internal_error")


def test_the_gateway_adds_an_output_cap_and_its_own_cache_salt(router_settings: Any) -> None:
    from gateway.stages.accounting.admission import Ticket
    from gateway.stages.prefix import CacheSalts
    from tests.support.fakes import FakeAccounting

    class Capping(FakeAccounting):
        async def admit(self, *args: Any, **kwargs: Any) -> Ticket:
            return Ticket(output_cap=4096)

    h = harness(accounting=Capping())
    h.pipeline.salts = CacheSalts(b"secret")
    _serve(h, {"model": "cheap", "messages": HELLO["messages"], "cache_salt": "someone-elses"})
    _serve(h, {"model": "mini", "messages": HELLO["messages"], "cache_salt": "someone-elses"})
    to_engine = json.loads(h.transports["small"].sent[0][1])
    to_api = json.loads(h.transports["api"].sent[0][1])
    assert to_engine["max_tokens"] == 4096 and to_api["max_completion_tokens"] == 4096 and "max_tokens" not in to_api
    assert to_engine["cache_salt"] == CacheSalts(b"secret").of("acme") != "someone-elses"
    assert "cache_salt" not in to_api  # an API provider takes no salt, and never the client's
