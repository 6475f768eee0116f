"""Live load of self-hosted engines, read from their Prometheus metrics (pure).

Each engine names things its own way; the first matching name wins. The load feeds each replica's load
window (sequences running beyond this gateway's own, and queued: pricing's operating point) and
replica choice its queue lengths. The polling itself is in ``pool.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

RUNNING = ("vllm:num_requests_running", "sglang:num_running_reqs", "tgi_batch_current_size", "llamacpp:requests_processing")
WAITING = ("vllm:num_requests_waiting", "sglang:num_queue_reqs", "tgi_queue_size", "llamacpp:requests_deferred")


@dataclass(frozen=True)
class EngineLoad:
    running: float
    waiting: float


def metric_sums(text: str) -> dict[str, float]:
    """Every metric of a Prometheus text exposition, summed over its label sets (lines that do not
    parse are skipped)."""
    values: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name = line.split("{", 1)[0].split(" ", 1)[0]
        try:
            values[name] = values.get(name, 0.0) + float(line.rsplit(" ", 1)[1])
        except (IndexError, ValueError):
            continue
    return values


def parse_engine_metrics(text: str) -> EngineLoad | None:
    """Sum each known metric over its label sets; None if the text has none of them."""
    values = metric_sums(text)

    def first(names: tuple[str, ...]) -> float | None:
        return next((values[n] for n in names if n in values), None)

    running = first(RUNNING)
    if running is None:
        return None
    return EngineLoad(running=running, waiting=first(WAITING) or 0.0)


def metrics_url(replica_url: str, metrics_path: str) -> str:
    """Engines serve /metrics at the server root, beside the /v1 API prefix."""
    root = replica_url[: -len("/v1")] if replica_url.endswith("/v1") else replica_url
    return root + metrics_path
