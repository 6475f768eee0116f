"""Published measurements of real engines, and the model's predictions of them.

``pricing/data/measurements.json`` holds the rows; ``bench/calibrate_pricing.py`` fits the
efficiency factors on the rows marked ``fit`` and reports errors on all of them (docs/pricing.md),
and a test keeps the shipped factors within the accuracy target.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass
from functools import lru_cache

from . import catalog
from .estimate import estimate
from .roofline import Deployment, Efficiency


@dataclass(frozen=True)
class Measurement:
    source: str
    engine: str  # the engine profile the row is predicted with
    engine_version: str
    gpu: str
    model: str
    gpus: int
    weight_precision: str
    kv_precision: str
    batch: int
    input_len: int
    output_len: int
    metric: str  # output_tok_s (per deployment), ttft_ms or tpot_ms
    value: float
    split: str  # fit or holdout
    scenario: str = "steady"  # steady (pricing/estimate.py's formula) or closed (a closed loop under load)


@lru_cache(maxsize=1)
def measurements() -> tuple[Measurement, ...]:
    rows = json.loads((catalog.DATA / "measurements.json").read_text())["measurements"]
    return tuple(Measurement(**row) for row in rows)


def deployment_for(row: Measurement, efficiency: Efficiency | None = None) -> Deployment:
    return Deployment(catalog.model(row.model), catalog.gpu(row.gpu), row.gpus, row.weight_precision,
                      row.kv_precision, efficiency=efficiency, engine=row.engine)


def predict(row: Measurement, efficiency: Efficiency | None = None) -> float:
    d = deployment_for(row, efficiency)
    if row.scenario == "closed":
        key = (row.model, row.gpu, row.gpus, row.weight_precision, row.kv_precision, row.engine, efficiency)
        return _under_load(key, row.input_len, row.output_len, row.batch)[row.metric]
    result = estimate(d, row.input_len, row.output_len, row.batch)
    return {"output_tok_s": result.output_tok_s, "ttft_ms": result.ttft_ms, "tpot_ms": result.tpot_ms}[row.metric]


@lru_cache(maxsize=64)
def _under_load(key: tuple, input_len: int, output_len: int, concurrency: int) -> dict[str, float]:
    """A closed loop run once per deployment and shape (a few seconds for the longest rows)."""
    from .serving import serve  # the scheduler in virtual time; imported here, it runs only for these rows

    model, gpu, gpus, weights, kv, engine, efficiency = key
    d = Deployment(catalog.model(model), catalog.gpu(gpu), gpus, weights, kv, efficiency=efficiency, engine=engine)
    result = serve(d, input_len, output_len, concurrency=concurrency)
    return {"output_tok_s": result.output_tok_s, "ttft_ms": result.ttft_s.mean * 1000, "tpot_ms": result.tpot_s.mean * 1000}


@dataclass(frozen=True)
class ErrorSummary:
    count: int
    median_abs_error: float  # |predicted / measured - 1|
    worst_ratio: float  # max(predicted/measured, measured/predicted)


def summarize(pairs: list[tuple[float, float]]) -> ErrorSummary:
    """Errors of (predicted, measured) pairs."""
    errors = [abs(p / m - 1) for p, m in pairs]
    worst = max(max(p / m, m / p) for p, m in pairs)
    return ErrorSummary(len(pairs), statistics.median(errors), worst)


def log_loss(pairs: list[tuple[float, float]]) -> float:
    return sum(math.log(p / m) ** 2 for p, m in pairs) / len(pairs)
