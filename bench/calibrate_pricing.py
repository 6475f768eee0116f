"""Fit the roofline model's efficiency factors to published measurements, and report the errors.

    python bench/calibrate_pricing.py [--write]

For each GPU architecture with 'fit' rows, a coordinate search over achieved bandwidth, decode
compute, prefill compute and per-step overhead minimizes the mean squared log error of the
predictions. Architectures without measurements keep documented defaults. ``--write`` updates
pricing/data/efficiency.json and the error tables in docs/pricing.md.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pricing import catalog  # noqa: E402
from pricing.calibration import Measurement, log_loss, measurements, predict, summarize  # noqa: E402
from pricing.roofline import Efficiency  # noqa: E402

GRID = {
    "bandwidth": [0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9],
    "compute": [0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8],
    "prefill": [0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8],
}
OVERHEADS = [0.0003, 0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.003, 0.004, 0.005]
# No published rows here yet: these borrow the factors of a measured neighbour (docs/pricing.md).
BORROWED_ARCHS = {"blackwell": "hopper", "cdna3": "hopper"}
BORROWED_ENGINES = {"sglang": "vllm", "tgi": "vllm", "llamacpp": "vllm", "tensorrt-llm": "vllm"}


def efficiency_for(row: Measurement, archs: dict[str, Efficiency], overheads: dict[str, float]) -> Efficiency:
    return replace(archs[catalog.gpu(row.gpu).arch], step_overhead_s=overheads[row.engine])


def fit(rows: list[Measurement]) -> tuple[dict[str, Efficiency], dict[str, float]]:
    """Coordinate search over every architecture's factors and every engine's step overhead."""
    archs = {catalog.gpu(r.gpu).arch: Efficiency() for r in rows}
    overheads = {r.engine: 0.001 for r in rows}

    def loss() -> float:
        return log_loss([(predict(r, efficiency_for(r, archs, overheads)), r.value) for r in rows])

    best = loss()
    for _ in range(4):
        for arch in archs:
            for name, values in GRID.items():
                for value in values:
                    previous = archs[arch]
                    archs[arch] = replace(previous, **{name: value})
                    current = loss()
                    if current < best:
                        best = current
                    else:
                        archs[arch] = previous
        for engine in overheads:
            for value in OVERHEADS:
                previous = overheads[engine]
                overheads[engine] = value
                current = loss()
                if current < best:
                    best = current
                else:
                    overheads[engine] = previous
    return archs, overheads


def error_table(archs: dict[str, Efficiency], overheads: dict[str, float]) -> str:
    lines = ["| split | engine | GPU | model | TP | precision | batch | in/out | metric | measured | predicted | ratio |",
             "|---|---|---|---|---:|---|---:|---|---|---:|---:|---:|"]
    for r in measurements():
        predicted = predict(r, efficiency_for(r, archs, overheads))
        lines.append(f"| {r.split} | {r.engine_version} | {r.gpu} | {r.model} | {r.gpus} | {r.weight_precision} | {r.batch} | "
                     f"{r.input_len}/{r.output_len} | {r.metric} | {r.value:,.0f} | {predicted:,.0f} | {predicted / r.value:.2f} |")
    return "\n".join(lines)


def summary_table(archs: dict[str, Efficiency], overheads: dict[str, float]) -> str:
    lines = ["| rows | count | median abs error | worst ratio |", "|---|---:|---:|---:|"]
    groups = {
        "throughput, fit": lambda r: r.metric == "output_tok_s" and r.split == "fit",
        "throughput, held out": lambda r: r.metric == "output_tok_s" and r.split == "holdout",
        "throughput, all": lambda r: r.metric == "output_tok_s",
        "TTFT, all": lambda r: r.metric == "ttft_ms",
        "TPOT, all": lambda r: r.metric == "tpot_ms",
    }
    for label, keep in groups.items():
        rows = [r for r in measurements() if keep(r)]
        s = summarize([(predict(r, efficiency_for(r, archs, overheads)), r.value) for r in rows])
        lines.append(f"| {label} | {s.count} | {s.median_abs_error:.1%} | {s.worst_ratio:.2f}x |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    archs, overheads = fit([r for r in measurements() if r.split == "fit"])
    for arch, source in BORROWED_ARCHS.items():
        archs[arch] = archs[source]
    for engine, source in BORROWED_ENGINES.items():
        overheads[engine] = overheads[source]
    for arch, efficiency in sorted(archs.items()):
        print(arch, efficiency.bandwidth, efficiency.compute, efficiency.prefill)
    print("step overhead per engine:", overheads)
    print(summary_table(archs, overheads))
    if args.write:
        write(archs, overheads)


def write(archs: dict[str, Efficiency], overheads: dict[str, float]) -> None:
    path = ROOT / "pricing" / "data" / "efficiency.json"
    document = json.loads(path.read_text())
    document["architectures"] = {
        arch: {"bandwidth": e.bandwidth, "compute": e.compute, "prefill": e.prefill} for arch, e in sorted(archs.items())
    }
    document["engines"] = {
        engine: {**document["engines"].get(engine, {"gqa_kv_reads": "shared"}), "step_overhead_s": overhead}
        for engine, overhead in sorted(overheads.items())
    }
    path.write_text(json.dumps(document, indent=1) + "\n")
    doc = ROOT / "docs" / "pricing.md"
    text = doc.read_text()
    tables = (("summary", summary_table(archs, overheads)), ("errors", error_table(archs, overheads)))
    for marker, table in tables:
        text = re.sub(rf"<!-- {marker}:start -->.*?<!-- {marker}:end -->",
                      lambda _, marker=marker, table=table: f"<!-- {marker}:start -->\n{table}\n<!-- {marker}:end -->", text, flags=re.S)
    doc.write_text(text)


if __name__ == "__main__":
    main()
