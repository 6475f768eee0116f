"""Cost truth on the demo stack: identical calls cost the same at a steady load, the price follows
the load smoothly, the cheap model never costs more than the flagship would, and the backend
report's attributed cost plus idle capacity is the GPU bill for the time the gateway ran.

The demo engines run in real time (the simulator times each step by the pricing model), so their
batch really grows with the load. The flagship's load window is shortened to 10 s
(``pricing.load_window_s``).
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import openai
import pytest

from enginesim.presets import PRESETS
from gateway.stages.accounting.metering import SLOT_S
from tests.support.processes import free_port, printed_keys, serve_demo, stop

PROBE = [{"role": "user", "content": "Write two sentences about the sea, please."}]
WINDOW_S = 10


@dataclass
class Demo:
    base: str
    keys: dict[str, str]
    started: float  # wall clock, just before `serve` was started
    client: openai.OpenAI


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    workdir = tmp_path_factory.mktemp("cost-truth")
    config = workdir / "tollgate.yaml"
    config.write_text(f"pricing: {{load_window_s: {WINDOW_S}}}\n")
    port = free_port()
    started = time.time()
    process, lines = serve_demo(workdir, port, "--config", str(config), "--demo")
    assert process.stdout is not None
    keys = printed_keys(lines + [process.stdout.readline(), process.stdout.readline()])
    base = f"http://127.0.0.1:{port}"
    yield Demo(base, keys, started, openai.OpenAI(base_url=base + "/v1", api_key=keys["tenant key"], max_retries=0,
                                                  timeout=60))
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


def test_identical_calls_cost_the_same_idle_and_under_load_and_follow_the_load_smoothly(demo: Demo) -> None:
    demo_client = demo.client
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
        while time.monotonic() - started < WINDOW_S:
            loaded.append((time.monotonic() - started, _probe(demo_client)))
    finally:
        stop_load.set()
        for worker in workers:
            worker.join()
    timed_after, stopped = [], time.monotonic()
    while time.monotonic() - stopped < 6.0:
        timed_after.append((time.monotonic() - stopped, _probe(demo_client)))
    after = [p for _, p in timed_after]

    usages = {usage for _, _, usage in idle + [p for _, p in loaded] + after}
    assert len(usages) == 1, f"the probes must be identical calls: {usages}"
    idle_prices = [cost for cost, _, _ in idle]
    assert _spread(idle_prices) <= 0.10, idle_prices
    # Each call is priced at the batch it ran in (averaged over at least its last 2 s), so the price
    # follows the load within seconds and holds steady while the load does.
    loaded_prices = [p[0] for at, p in loaded if at > 3.5]
    assert len(loaded_prices) >= 8 and _spread(loaded_prices) <= 0.10, loaded_prices
    assert max(loaded_prices) < min(idle_prices) / 3, "a batch of ~7 shares each decode step"
    # once the last 2 s (3 s in whole seconds) hold no load
    after_prices = [p[0] for at, p in timed_after if at > 3.5]
    assert len(after_prices) >= 2
    assert _spread(after_prices + idle_prices) <= 0.10, (idle_prices, after_prices)

    # The flagship sat idle: its counterfactual is priced at the batch the call ran in, and for the
    # same tokens the 8B model on one L40S never costs more than the 70B on four H100s.
    assert all(cost < flagship for cost, flagship, _ in idle + [p for _, p in loaded] + after)


def test_attributed_cost_plus_idle_capacity_is_the_gpu_bill(demo: Demo) -> None:
    """Runs after the load above (and adds a burst of its own): the backend report's bill is
    GPUs x $/hour x the hours the gateway metered, those hours are the time it ran (less the
    partial slots at start-up and now), and attributed is exactly what the ledger's calls cost."""
    threads = [threading.Thread(target=lambda: [demo.client.chat.completions.create(
        model="llama-3.1-8b", max_tokens=40, messages=[{"role": "user", "content": "burst"}]) for _ in range(4)])
        for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    time.sleep(SLOT_S + 1)  # the slot holding the burst is metered
    admin = {"authorization": f"Bearer {demo.keys['admin key']}"}
    report = httpx.get(demo.base + "/v1/reports/costs", params={"group_by": "backend"}, headers=admin).json()
    elapsed_h = (time.time() - demo.started) / 3600
    rows = {row["group"]: row for row in report["groups"]}
    assert set(rows) == {"sim-small", "sim-large"}

    for name, preset in (("sim-small", "small"), ("sim-large", "large")):
        row, deployment = rows[name], PRESETS[preset].deployment()
        usd_per_hour = deployment.gpus * deployment.gpu.usd_per_hour  # the catalog's price: the demo sets none
        assert row["bill_usd"] == pytest.approx(usd_per_hour * row["replica_hours"], rel=1e-4)
        assert elapsed_h - 1.5 * SLOT_S / 3600 <= row["replica_hours"] <= elapsed_h  # all but the current slot
        assert row["attributed_usd"] + row["idle_usd"] == pytest.approx(usd_per_hour * row["replica_hours"], rel=0.01)
        assert row["planned_utilization"] == 0.6  # the default

    small = rows["sim-small"]
    records, cursor = [], None
    while True:
        page = httpx.get(demo.base + "/v1/ledger", params={"limit": 1000, **({"after": cursor} if cursor else {})},
                         headers={"authorization": f"Bearer {demo.keys['tenant key']}"}).json()
        records += page["data"]
        cursor = page["next"]
        if not cursor:
            break
    on_small = [r["cost_usd"] for r in records if r["backend"] == "sim-small"]
    # the aggregates count nano-dollars: each record's cost is rounded to one on the way in
    assert small["attributed_usd"] == pytest.approx(sum(on_small), abs=1e-9 * len(on_small))
    assert small["requests"] == len([r for r in records if r["backend"] == "sim-small"]) > 40
    # Idle capacity splits into time nothing ran and busy time no price covered. Busy time is
    # measured from in-flight counts (HTTP time included, engine queues from 1 s readings), so it
    # and the prices agree only roughly: measured 0.88 to 1.17 of it on this stack (docs/pricing.md).
    busy_usd = small["busy_share"] * small["bill_usd"]
    assert 0.6 * busy_usd <= small["attributed_usd"] <= 1.3 * busy_usd
    assert small["idle_unbusy_usd"] + small["idle_busy_usd"] == pytest.approx(small["idle_usd"], abs=1e-8)
    assert rows["sim-large"]["attributed_usd"] == 0 and rows["sim-large"]["idle_usd"] == rows["sim-large"]["bill_usd"]

    tenant = httpx.get(demo.base + "/v1/reports/costs", params={"group_by": "backend"},
                       headers={"authorization": f"Bearer {demo.keys['tenant key']}"})
    assert tenant.status_code == 403 and tenant.json()["error"]["code"] == "admin_only"
