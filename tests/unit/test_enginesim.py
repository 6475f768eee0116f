from __future__ import annotations

import asyncio

from enginesim.engine import Engine, LinearTiming, PrefixCache
from enginesim.textgen import flatten_chat, plan_answer, tokenize


def test_tokenizer_is_offline_cl100k() -> None:
    assert tokenize("hello world") == [15339, 1917]


def test_plans_are_deterministic_and_respect_max_tokens_and_stop() -> None:
    first = plan_answer("prompt", 1, None, [])
    assert first == plan_answer("prompt", 1, None, [])
    assert first != plan_answer("prompt", 2, None, [])
    capped = plan_answer("prompt", 1, 3, [])
    assert len(capped.tokens) == 3 and capped.finish_reason == "length"
    word = first.tokens[2].text
    stopped = plan_answer("prompt", 1, None, [word])
    assert word not in "".join(t.text for t in stopped.tokens) and stopped.finish_reason == "stop"


def test_prefix_cache_counts_whole_blocks_of_a_shared_prefix_and_evicts_lru() -> None:
    cache = PrefixCache(block_size=4, capacity_blocks=3)
    assert cache.lookup_and_insert(list(range(10))) == 0
    assert cache.lookup_and_insert(list(range(10))) == 8
    assert cache.lookup_and_insert(list(range(8)) + [99, 98]) == 8
    assert cache.lookup_and_insert([7] + list(range(9))) == 0  # different first block: no hit
    assert cache.lookup_and_insert(list(range(10))) == 0  # evicted by the last insert (capacity 3 blocks)


def test_whole_prompt_hit_still_recomputes_the_last_token() -> None:
    cache = PrefixCache(block_size=4, capacity_blocks=10)
    cache.lookup_and_insert(list(range(8)))
    assert cache.lookup_and_insert(list(range(8))) == 7


def test_engine_batches_and_time_grows_with_batch() -> None:
    timing = LinearTiming(prefill_tokens_per_s=1e6, step_base_s=0.001, step_per_seq_s=0.001)
    assert timing.decode_step_seconds(32, 100) > timing.decode_step_seconds(1, 100)

    async def run() -> tuple[list[int], int]:
        engine = Engine(timing, max_num_seqs=2, time_scale=0)
        engine.start()
        sequences = [engine.submit(tokenize(flatten_chat([{"role": "user", "content": f"q{i}"}])),
                                   plan_answer(f"q{i}", None, 5, [])) for i in range(3)]
        await asyncio.sleep(0)
        peak = len(engine.running)
        counts = []
        for sequence in sequences:
            count = 0
            while await sequence.out.get() is not None:
                count += 1
            counts.append(count)
        await engine.stop()
        return counts, peak

    counts, peak = asyncio.run(run())
    assert counts == [5, 5, 5] and peak <= 2


def test_fault_switches_take_only_their_own_types() -> None:
    import pytest

    from enginesim.server import Faults

    faults = Faults()
    faults.update({"error_rate": 1, "omit_usage": True, "drop_stream_after_tokens": 3})
    assert (faults.error_rate, faults.omit_usage, faults.drop_stream_after_tokens) == (1.0, True, 3)
    for bad in ({"omit_usage": "false"}, {"error_rate": "0.5"}, {"error_rate": True}, {"nope": 1}):
        with pytest.raises(ValueError):
            faults.update(bad)
