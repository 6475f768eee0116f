"""A stable price per call on the demo stack: identical calls cost the same at a steady load, the
price follows the load smoothly, and the cheap model never costs more than the flagship would.

The demo engines run in real time (the simulator times each step by the pricing model), so their
batch really grows with the load. The pricing window is shortened to 10 s (``pricing.load_window_s``)
so that a steady state is reached within the test.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Iterator

import openai
import pytest

from tests.support.processes import free_port, printed_keys, serve_demo, stop

PROBE = [{"role": "user", "content": "Write two sentences about the sea, please."}]
WINDOW_S = 10


@pytest.fixture(scope="module")
def demo_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[openai.OpenAI]:
    workdir = tmp_path_factory.mktemp("price-stability")
    config = workdir / "tollgate.yaml"
    config.write_text(f"pricing: {{load_window_s: {WINDOW_S}}}\n")
    port = free_port()
    process, lines = serve_demo(workdir, port, "--config", str(config), "--demo")
    assert process.stdout is not None
    keys = printed_keys(lines + [process.stdout.readline(), process.stdout.readline()])
    yield openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=keys["tenant key"], max_retries=0, timeout=60)
    stop(process)


def _probe(client: openai.OpenAI) -> tuple[float, float, tuple[int, int]]:
    raw = client.chat.completions.with_raw_response.create(model="llama-3.1-8b", messages=PROBE, max_tokens=60)
    usage = raw.parse().usage
    assert usage is not None
    return (float(raw.headers["x-tollgate-cost-usd"]), float(raw.headers["x-tollgate-flagship-cost-usd"]),
            (usage.prompt_tokens, usage.completion_tokens))


def _spread(prices: list[float]) -> float:
    """The largest distance from the median, as a share of it."""
    middle = statistics.median(prices)
    return max(abs(p - middle) for p in prices) / middle


def test_identical_calls_cost_the_same_idle_and_under_load_and_follow_the_load_smoothly(demo_client: openai.OpenAI) -> None:
    idle = [_probe(demo_client) for _ in range(5)]
    stop_load = threading.Event()

    def load() -> None:
        while not stop_load.is_set():
            demo_client.chat.completions.create(model="llama-3.1-8b", max_tokens=60,
                                                messages=[{"role": "user", "content": "background load"}])

    workers = [threading.Thread(target=load) for _ in range(6)]
    for worker in workers:
        worker.start()
    loaded, started = [], time.monotonic()
    try:
        while time.monotonic() - started < 2 * WINDOW_S:
            loaded.append((time.monotonic() - started, _probe(demo_client)))
    finally:
        stop_load.set()
        for worker in workers:
            worker.join()
    after = [_probe(demo_client) for _ in range(6)]

    usages = {usage for _, _, usage in idle + [p for _, p in loaded] + after}
    assert len(usages) == 1, f"the probes must be identical calls: {usages}"
    idle_prices = [cost for cost, _, _ in idle]
    assert _spread(idle_prices) <= 0.10, idle_prices
    steady = [p[0] for at, p in loaded if at > WINDOW_S + 2]  # the window holds nothing but the load
    assert len(steady) >= 4 and _spread(steady) <= 0.10, steady
    assert max(steady) < min(idle_prices) / 2, "a batch of ~7 shares each decode step"

    # Smooth: as the load starts the price only falls, as it stops it only rises (2% for the
    # window's one-second steps), never jumping back and forth with each reading.
    ramp = [p[0] for _, p in loaded]
    assert all(b <= a * 1.02 for a, b in zip(ramp, ramp[1:], strict=False)), ramp
    falling_back = [ramp[-1]] + [cost for cost, _, _ in after]
    assert all(b >= a * 0.98 for a, b in zip(falling_back, falling_back[1:], strict=False)), falling_back

    # The flagship sat idle: its counterfactual is priced at the batch the call ran in, and for the
    # same tokens the 8B model on one L40S never costs more than the 70B on four H100s.
    assert all(cost < flagship for cost, flagship, _ in idle + [p for _, p in loaded] + after)
