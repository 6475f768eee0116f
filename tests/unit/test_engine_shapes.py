"""Each engine kind's answers with token logprobs (``tests/fixtures/engines``, provenance inside)
replayed through the gateway: it asks for logprobs the way that engine wants, the cascade reads a
confidence from what the engine sends back, and clients get OpenAI's shapes (checked with the
official SDK's models) without logprobs they did not ask for."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from openai.types import Completion
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from gateway.config import parse_settings
from gateway.pipeline import Answer, StreamedAnswer
from gateway.upstream.transport import MockResponse
from router.confidence import SCORERS
from tests.support.fakes import harness
from tests.support.router_data import synthetic_examples

FIXTURES = Path(__file__).parents[1] / "fixtures" / "engines"
KINDS = ("vllm", "sglang", "tgi", "llamacpp", "openai")
ENDPOINTS = {"chat": "/chat/completions", "completion": "/completions"}


def _fixture(kind: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{kind}.json").read_text())


def _replay(fixture: dict[str, Any], name: str, seen: list[dict[str, Any]]) -> Any:
    async def handle(url: str, body: bytes) -> MockResponse:
        request = json.loads(body)
        seen.append(request)
        if not request.get("stream"):
            return MockResponse(200, [json.dumps(fixture[f"{name}_whole"]).encode()])
        events = fixture[f"{name}_stream"]
        return MockResponse(200, [b"data: " + (e.encode() if isinstance(e, str) else json.dumps(e).encode()) + b"\n\n"
                                  for e in events])

    return handle


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> str:
    from router.train import fit

    path = tmp_path_factory.mktemp("router") / "router.json"
    fit(synthetic_examples(300)).save(path)
    return str(path)


def _settings(kind: str, artifact: str) -> Any:
    return parse_settings({
        "redis_url": "redis://127.0.0.1:1/0",
        "backends": [{"name": "engine", "kind": kind, "urls": ["http://engine:8000/v1"],
                      **({"api_key": "sk-x", "prices": {"m": {"input": 1, "output": 2}}} if kind == "openai" else
                         {"deployment": {"model": "llama-3.1-8b", "gpu": "l40s"}})},
                     {"name": "large", "kind": "vllm", "urls": ["http://large:8000/v1"],
                      "deployment": {"model": "llama-3.1-70b", "gpu": "h100-sxm", "gpus": 4}}],
        "models": [{"name": "cheap", "tier": "cheap", "targets": [{"backend": "engine", "model": "m"}]},
                   {"name": "flagship", "tier": "flagship", "targets": [{"backend": "large"}]}],
        "router": {"artifact": artifact, "cheap": "cheap", "flagship": "flagship", "cascade": {"enabled": True}},
    }, {})


def _body(fixture: dict[str, Any], name: str, **extra: Any) -> dict[str, Any]:
    request = {k: v for k, v in fixture[f"{name}_request"].items() if "logprobs" not in k}
    return {**request, "model": "cascade", **extra}


def _token_logprobs(answer: dict[str, Any], chat: bool) -> list[float]:
    logprobs = answer["choices"][0].get("logprobs") or {}
    if chat:
        return [entry["logprob"] for entry in logprobs.get("content") or ()]
    return [value for value in logprobs.get("token_logprobs") or () if value is not None]


def _streamed_logprobs(events: list[Any], chat: bool) -> list[float]:
    return [lp for event in events if isinstance(event, dict) and event["choices"] for lp in _token_logprobs(event, chat)]


def _texts(events: list[Any], chat: bool) -> list[str]:
    choices = [event["choices"][0] for event in events if isinstance(event, dict) and event["choices"]]
    return [(c["delta"].get("content") if chat else c.get("text")) or "" for c in choices]


def _serve(h: Any, body: dict[str, Any], endpoint: str) -> Answer | StreamedAnswer:
    return asyncio.run(h.pipeline.serve(h.incoming(body, endpoint=endpoint)))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", ["chat", "completion"])
def test_the_cascade_asks_each_engine_for_logprobs_its_way_and_reads_its_answer(kind: str, name: str,
                                                                                artifact: str) -> None:
    fixture, seen = _fixture(kind), []
    h = harness({"engine": _replay(fixture, name, seen)}, config=_settings(kind, artifact))
    answer = _serve(h, _body(fixture, name), ENDPOINTS[name])
    assert isinstance(answer, Answer)
    asked = {k: v for k, v in seen[0].items() if "logprobs" in k}
    assert asked == {k: v for k, v in fixture[f"{name}_request"].items() if "logprobs" in k}  # what was recorded
    expected = _streamed_logprobs(fixture[f"{name}_stream"], name == "chat")
    if expected:  # the confidence is the engine's own logprobs, read from its stream
        assert answer.outcome.confidence == pytest.approx(SCORERS["mean_min"](expected), abs=1e-6)
        assert answer.outcome.confidence < 1.0
    else:  # TGI's legacy completions return none: judged on the plain signals alone
        assert kind == "tgi" and name == "completion" and answer.outcome.confidence == 1.0
    choice = answer.body["choices"][0]
    assert choice.get("logprobs") is None  # asked for by the gateway, not by the client
    if not answer.outcome.escalated:
        text = choice["message"]["content"] if name == "chat" else choice["text"]
        assert text == "".join(_texts(fixture[f"{name}_stream"], name == "chat"))
    (ChatCompletion if name == "chat" else Completion).model_validate(answer.body)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", ["chat", "completion"])
def test_each_engines_stream_reaches_the_client_in_openais_shape(kind: str, name: str, artifact: str) -> None:
    fixture, seen = _fixture(kind), []
    h = harness({"engine": _replay(fixture, name, seen)}, config=_settings(kind, artifact))
    body = _body(fixture, name, model="cheap", stream=True, stream_options={"include_usage": True})
    chat = name == "chat"
    if chat:
        body.update(logprobs=True)
    else:
        body.update(logprobs=1)

    async def read() -> list[bytes]:
        answer = await h.pipeline.serve(h.incoming(body, endpoint=ENDPOINTS[name]))
        assert isinstance(answer, StreamedAnswer)
        try:
            return [data async for data in answer]
        finally:
            answer.close()

    lines = [line[6:] for data in asyncio.run(read()) for line in data.decode().split("\n") if line.startswith("data: ")]
    assert lines[-1] == "[DONE]"
    chunks = [json.loads(line) for line in lines[:-1]]
    for chunk in chunks:
        if chat:
            ChatCompletionChunk.model_validate(chunk)
        else:  # the SDK types a legacy chunk as a whole Completion (finish_reason never null): keys only
            assert isinstance(chunk["id"], str) and isinstance(chunk["created"], int) and chunk["object"] == "text_completion"
        assert chunk["model"] == "cheap"
    usage = chunks[-1]
    assert usage["choices"] == [] and usage["usage"]["completion_tokens"] > 0
    first = next(c for c in chunks if c["choices"])
    assert (usage["id"], usage["created"]) == (first["id"], first["created"])  # the added usage chunk too
    assert _streamed_logprobs(chunks, chat) == _streamed_logprobs(fixture[f"{name}_stream"], chat)  # asked: kept
    if kind == "llamacpp":  # its streams carry no usage chunk: the gateway adds one, estimated
        assert not any(isinstance(e, dict) and e.get("usage") for e in fixture[f"{name}_stream"])
