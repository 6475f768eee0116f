"""What a request can cost, counted from its shape: every part that becomes prompt, every completion."""

from __future__ import annotations

import pytest

from gateway.stages.accounting.service import Accounting
from gateway.stages.pricing import Pricing
from tests.support.fakes import settings
from wire import tokens

HI = [{"role": "user", "content": "hi"}]


def test_everything_that_becomes_prompt_is_counted() -> None:
    bare = tokens.prompt_tokens({"messages": HI})
    tools = [{"type": "function", "function": {"name": "lookup", "description": "find a thing " * 50,
                                               "parameters": {"type": "object"}}}]
    assert tokens.prompt_tokens({"messages": HI, "tools": tools}) > bare + 100
    schema = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"properties": {"a" * 50: {}}}}}
    assert tokens.prompt_tokens({"messages": HI, "response_format": schema}) > bare + 10
    image = [{"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "image_url", "image_url": {"url": "x"}}]}]
    assert tokens.prompt_tokens({"messages": image}, non_text_part_tokens=1000) == bare + 1000
    call = [*HI, {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": '{"q": "' + "w " * 100 + '"}'}}]},
            {"role": "tool", "tool_call_id": "c1", "name": "lookup", "content": "found"}]
    assert tokens.prompt_tokens({"messages": call}) > bare + 100
    assert tokens.prompt_tokens({"prompt": ["one two", "three"], "suffix": "four"}) == 4


def test_completions_count_n_best_of_and_every_prompt_of_a_batch() -> None:
    assert tokens.completions_requested({"messages": HI}) == 1
    assert tokens.completions_requested({"messages": HI, "n": 100}) == 100
    assert tokens.completions_requested({"prompt": "a", "n": 2, "best_of": 5}) == 5
    assert tokens.completions_requested({"prompt": ["a", "b", "c"], "n": 2}) == 6
    assert tokens.completions_requested({"prompt": [1, 2, 3]}) == 1  # one prompt of token ids
    assert tokens.completions_requested({"prompt": [[1, 2], [3]], "n": True}) == 2  # junk n counts as 1


def test_the_reservation_is_an_upper_bound_and_says_what_cap_to_send() -> None:
    accounting = Accounting(settings(), redis=None, scripts=None, pricing=Pricing(settings()))  # type: ignore[arg-type]
    prompt, output, cap = accounting.reservation({"messages": HI, "n": 4, "max_tokens": 10})
    assert prompt >= tokens.prompt_tokens({"messages": HI}) * 1.1 + 16 and output == 40 and cap is None
    _, output, cap = accounting.reservation({"messages": HI})
    assert output == 4096 and cap == 4096  # nothing asked: the default is held, and sent upstream as the cap


def test_embeddings_bodies_are_validated_and_their_inputs_counted() -> None:
    from gateway.errors import APIError
    from gateway.protocol import EMBEDDINGS, parse_request
    from wire.tokens import prompt_tokens

    parsed = parse_request({"model": "e", "input": ["one", "two"], "encoding_format": "base64"}, EMBEDDINGS)
    assert (parsed.model, parsed.stream, parsed.outputs) == ("e", False, 1)
    for bad in ({"model": "e", "input": ""}, {"model": "e"}, {"model": "e", "input": ["a", ""]},
                {"model": "e", "input": "a", "encoding_format": "hex"}, {"model": "e", "input": "a", "dimensions": 0}):
        with pytest.raises(APIError) as refused:
            parse_request(bad, EMBEDDINGS)
        assert refused.value.status == 400
    assert prompt_tokens({"model": "e", "input": ["hello world", "hello"]}) == prompt_tokens({"prompt": ["hello world", "hello"]}) > 0
    assert prompt_tokens({"model": "e", "input": [1, 2, 3]}) == 3
