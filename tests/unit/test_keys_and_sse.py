from __future__ import annotations

import asyncio

from gateway.store.keys import bearer_token, hash_key, hashes_match, new_key, parse_key
from wire import sse


def test_keys_round_trip_and_malformed_keys_are_rejected() -> None:
    key = new_key()
    parsed = parse_key(key.full)
    assert parsed is not None and parsed.key_id == key.key_id
    for bad in ("", "sk-tg-", "sk-tg-short.x", key.full + "!", key.full.replace("sk-tg-", "sk-xx-"), "sk-tg-ABCDEFGHIJKL." + "a" * 43):
        assert parse_key(bad) is None


def test_hash_is_keyed_and_compared_in_constant_time() -> None:
    key = new_key().full
    assert hash_key(b"one", key) != hash_key(b"two", key)
    assert hashes_match(hash_key(b"one", key), hash_key(b"one", key))
    assert not hashes_match(hash_key(b"one", key), hash_key(b"one", key + "x"))


def test_bearer_token_parsing() -> None:
    assert bearer_token("Bearer abc") == "abc"
    assert bearer_token("bearer  abc ") == "abc"
    assert bearer_token("Basic abc") is None and bearer_token("Bearer ") is None and bearer_token(None) is None


def test_sse_decoder_handles_split_chunks_comments_and_multiline_data() -> None:
    async def chunks():
        for piece in [b"data: {\"a\"", b": 1}\n\n: keep-alive\n\nevent: error\ndata: x\ndata: y\n", b"\ndata: [DONE]"]:
            yield piece

    async def collect():
        return [event async for event in sse.iter_events(sse.iter_lines(chunks()))]

    events = asyncio.run(collect())
    assert [e.data for e in events] == [b'{"a": 1}', b"x\ny", b"[DONE]"]
    assert events[1].event == "error"
