from __future__ import annotations

import asyncio

from enginesim.engine import Engine, LinearTiming, PrefixCache
from enginesim.server import render_metrics
from enginesim.textgen import flatten_chat, plan_answer, tokenize
from gateway.upstream.engine_metrics import metric_sums


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
        counts = await _drained(sequences)
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


def test_a_long_prompt_is_prefilled_in_chunks_while_the_batch_goes_on_decoding() -> None:
    """vLLM's token budget (the pricing package's scheduler, on a real clock): a 10,000-token prompt
    under a 2,048-token budget takes five steps to prefill, and a sequence already decoding gets a
    token in each of them; the long one's first token comes with the step that finishes its prompt."""
    timing = LinearTiming()

    async def run(budget: int) -> tuple[int, int]:
        engine = Engine(timing, max_num_batched_tokens=budget, time_scale=0)
        engine.start()
        short = engine.submit([1, 2, 3], plan_answer("short", None, 40, []))
        await short.out.get()  # decoding now
        long = engine.submit(list(range(10_000)), plan_answer("long", None, 3, []))
        await long.out.get()
        decoded_meanwhile = short.emitted - 1
        await engine.stop()
        return decoded_meanwhile, long.scheduled.prefilled

    chunked, prefilled = asyncio.run(run(2048))
    assert prefilled >= 10_000 and chunked >= 5  # ceil(10,000 / (2,048 - 1 decode)) steps, a token each
    whole, _ = asyncio.run(run(1_000_000))
    assert whole <= 2  # without a binding budget the prompt is prefilled in one step


def test_an_aborted_sequence_frees_its_slot_and_kv_at_once() -> None:
    async def run() -> tuple[int, float, float]:
        engine = Engine(LinearTiming(), max_num_seqs=1, time_scale=0)
        engine.start()
        first = engine.submit(list(range(500)), plan_answer("first", None, 50, []))
        await first.out.get()
        second = engine.submit([1, 2, 3], plan_answer("second", None, 2, []))
        held = engine.kv_usage
        engine.abort(first)  # its client left: the waiting one gets the slot
        [tokens] = await _drained([second])
        await engine.stop()
        return tokens, held, engine.kv_usage

    tokens, held, after = asyncio.run(run())
    assert tokens == 2 and held > 0 and after == 0


def test_a_cache_too_small_for_the_batch_preempts_the_newest_and_says_so_in_the_metrics() -> None:
    """Two 100-token prompts whose answers outgrow a 205-token KV cache together: the newest is put
    back to wait and recomputed (vLLM's recompute mode), both answers still come out whole, and
    ``vllm:num_preemptions_total`` counts it."""
    plans = [plan_answer(f"s{i}", None, 200, []) for i in range(2)]

    async def run() -> tuple[list[int], str]:
        engine = Engine(LinearTiming(), kv_capacity_tokens=205, time_scale=0)
        engine.start()
        sequences = [engine.submit(list(range(100 * i, 100 * i + 100)), plan) for i, plan in enumerate(plans)]
        counts = await _drained(sequences)
        await engine.stop()
        return counts, render_metrics("m", engine)

    assert min(len(plan.tokens) for plan in plans) > 3  # a few tokens each and both no longer fit
    counts, metrics = asyncio.run(run())
    assert counts == [len(plan.tokens) for plan in plans]
    assert metric_sums(metrics)["vllm:num_preemptions_total"] >= 1


async def _drained(sequences: list) -> list[int]:
    """How many tokens each sequence gave before its end, read in order."""
    counts = []
    for sequence in sequences:
        count = 0
        while await sequence.out.get() is not None:
            count += 1
        counts.append(count)
    return counts
