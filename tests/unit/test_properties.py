"""Property tests (hypothesis): the SSE parser, pricing, limits and settlement, for any input."""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.stages.accounting.admission import Ticket
from gateway.stages.accounting.limits import CallerLimits, LimitSet, checks_for, format_reset
from pricing import catalog
from pricing.call_cost import ApiPricing, OperatingPoint, SelfHostedPricing
from pricing.prices import TokenPrices, normalize_usage
from pricing.roofline import Deployment
from wire import sse

PAYLOAD = st.binary(min_size=1, max_size=60).filter(lambda b: b"\n" not in b and b"\r" not in b)


async def _parse(chunks: list[bytes]) -> list[bytes]:
    async def source():
        for chunk in chunks:
            yield chunk
    return [event.data async for event in sse.iter_events(sse.iter_lines(source()))]


@given(st.lists(PAYLOAD, min_size=1, max_size=20), st.data())
def test_sse_events_survive_any_cut_into_chunks(payloads: list[bytes], data: st.DataObject) -> None:
    stream = b"".join(sse.encode(p) for p in payloads)
    cuts = sorted(data.draw(st.sets(st.integers(1, max(len(stream) - 1, 1)), max_size=30)))
    chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True) if stream[a:b]]
    assert asyncio.run(_parse(chunks)) == payloads


USAGE = st.fixed_dictionaries({
    "prompt_tokens": st.integers(0, 200_000), "completion_tokens": st.integers(0, 50_000),
}).flatmap(lambda u: st.fixed_dictionaries({
    **{k: st.just(v) for k, v in u.items()},
    "prompt_tokens_details": st.fixed_dictionaries({"cached_tokens": st.integers(0, u["prompt_tokens"])}),
}))
PRICES = st.tuples(st.floats(0, 100), st.floats(0, 200), st.floats(0, 1)).map(
    lambda p: TokenPrices.per_million(p[0], p[1], p[0] * p[2]))


@settings(max_examples=200)
@given(PRICES, USAGE, st.integers(1, 1000))
def test_api_prices_are_non_negative_monotone_and_cached_tokens_never_cost_more(prices, usage, more) -> None:
    pricing = ApiPricing(prices)
    cost = pricing.cost(normalize_usage(usage))
    assert cost >= 0
    longer = {**usage, "completion_tokens": usage["completion_tokens"] + more}
    assert pricing.cost(normalize_usage(longer)) >= cost
    uncached = {**usage, "prompt_tokens_details": {"cached_tokens": 0}}
    assert pricing.cost(normalize_usage(uncached)) >= cost - 1e-12


SELF_HOSTED = SelfHostedPricing(Deployment(catalog.model("llama-3.1-8b"), catalog.gpu("l40s"), 1, "fp8", "fp8"), 1.2)


@settings(max_examples=100)
@given(USAGE, st.integers(1, 256), st.integers(1, 4000))
def test_self_hosted_prices_grow_with_tokens_and_are_finite(usage, running, more) -> None:
    point = OperatingPoint(running, 1024)
    cost = SELF_HOSTED.cost(normalize_usage(usage), point)
    assert 0 <= cost < float("inf")
    longer = {**usage, "completion_tokens": usage["completion_tokens"] + more}
    assert SELF_HOSTED.cost(normalize_usage(longer), point) >= cost


LIMITS = st.builds(LimitSet, st.none() | st.integers(0, 10**6), st.none() | st.integers(0, 10**9),
                   st.none() | st.floats(0, 10**4), st.none() | st.floats(0, 10**5))


@given(LIMITS, LIMITS, st.integers(0, 10**6), st.floats(0, 100), st.integers(0, 10**6), st.floats(0, 100))
def test_every_counter_is_settled_with_what_the_call_used(tenant, key, tokens, max_cost, used_tokens, cost) -> None:
    checks = checks_for(CallerLimits(tenant, key), "t", "k", tokens, max_cost)
    settled = Ticket(checks, [0] * len(checks), 1).settlements(used_tokens, cost)
    assert [(counter, kind) for counter, kind, _ in settled] == [(c.key, c.kind) for c in checks]
    for check, (_, _, used) in zip(checks, settled, strict=True):
        assert used == {"rpm": 1, "tpm": used_tokens}.get(check.name, round(cost * 1e9)) and used >= 0


@given(st.floats(0, 10**7))
def test_reset_durations_read_back_to_at_least_the_seconds(seconds: float) -> None:
    text = format_reset(seconds)
    hours = int(text.split("h")[0]) if "h" in text else 0
    rest = text.split("h")[-1]
    minutes = int(rest.split("m")[0]) if "m" in rest else 0
    secs = int(rest.split("m")[-1].rstrip("s"))
    assert hours * 3600 + minutes * 60 + secs >= seconds and secs < 60 and minutes < 60
