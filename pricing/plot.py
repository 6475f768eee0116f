"""Charts as standalone SVG (no plotting library, no fonts to fetch): roofline and cost curves.

Each function returns the SVG text; the CLI writes it to a file a browser or viewer opens.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from html import escape

from . import architecture as arch
from . import roofline
from .estimate import DoesNotFit, estimate
from .roofline import Deployment

WIDTH, HEIGHT, MARGIN = 720, 420, 70
COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd")


def _log_scale(values: list[float], low_px: float, high_px: float) -> Callable[[float], float]:
    low, high = math.log10(min(values)), math.log10(max(values))
    span = (high - low) or 1.0
    return lambda v: low_px + (math.log10(v) - low) / span * (high_px - low_px)


def _ticks(values: list[float]) -> list[float]:
    low, high = math.floor(math.log10(min(values))), math.ceil(math.log10(max(values)))
    return [10.0**e for e in range(low, high + 1) if min(values) <= 10.0**e <= max(values)]


def line_chart(title: str, x_label: str, y_label: str, series: dict[str, list[tuple[float, float]]],
               marks: Sequence[tuple[float, float, str]] = ()) -> str:
    """Log-log line chart of named series, with optional labelled points."""
    xs = [x for points in series.values() for x, _ in points] + [m[0] for m in marks]
    ys = [y for points in series.values() for _, y in points] + [m[1] for m in marks]
    sx = _log_scale(xs, MARGIN, WIDTH - 20)
    sy = _log_scale(ys, HEIGHT - MARGIN, 40)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" font-family="sans-serif" font-size="12">',
             '<rect width="100%" height="100%" fill="white"/>',
             f'<text x="{WIDTH / 2}" y="22" text-anchor="middle" font-size="15">{escape(title)}</text>',
             f'<text x="{WIDTH / 2}" y="{HEIGHT - 15}" text-anchor="middle">{escape(x_label)}</text>',
             f'<text x="16" y="{HEIGHT / 2}" text-anchor="middle" transform="rotate(-90 16 {HEIGHT / 2})">{escape(y_label)}</text>',
             f'<line x1="{MARGIN}" y1="{HEIGHT - MARGIN}" x2="{WIDTH - 20}" y2="{HEIGHT - MARGIN}" stroke="black"/>',
             f'<line x1="{MARGIN}" y1="40" x2="{MARGIN}" y2="{HEIGHT - MARGIN}" stroke="black"/>']
    for tick in _ticks(xs):
        parts.append(f'<text x="{sx(tick):.1f}" y="{HEIGHT - MARGIN + 16}" text-anchor="middle">{tick:g}</text>')
    for tick in _ticks(ys):
        parts.append(f'<text x="{MARGIN - 6}" y="{sy(tick) + 4:.1f}" text-anchor="end">{tick:g}</text>')
    for index, (name, points) in enumerate(series.items()):
        color = COLORS[index % len(COLORS)]
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in points)
        parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{path}"/>')
        parts.append(f'<text x="{WIDTH - 30}" y="{50 + 16 * index}" text-anchor="end" fill="{color}">{escape(name)}</text>')
    for x, y, label in marks:
        parts.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="4" fill="black"/>')
        parts.append(f'<text x="{sx(x) + 6:.1f}" y="{sy(y) - 6:.1f}">{escape(label)}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def roofline_svg(d: Deployment, context: int, batches: tuple[int, ...] = (1, 8, 64, 256)) -> str:
    """Attainable FLOP/s against arithmetic intensity, with the decode step at several batch sizes."""
    bandwidth = d.gpu.memory_bandwidth_tb_s * 1e12 * d.gpus
    peak = d.gpu.peak_flops(d.compute_precision) * d.gpus
    intensities = [10 ** (i / 10) for i in range(-10, 41)]
    roof = [(i, min(peak, i * bandwidth) / 1e12) for i in intensities]
    marks = []
    for batch in batches:
        flops = arch.decode_flops(d.model, batch, context)
        seconds = roofline.decode_step_seconds(d, batch, context)
        moved = roofline.decode_memory_seconds(d, batch, context) * bandwidth * d.eff.bandwidth
        marks.append((flops / moved, flops / seconds / 1e12, f"b={batch}"))
    title = f"{d.model.id} on {d.gpus} x {d.gpu.id} ({d.weight_precision}), decode at context {context}"
    return line_chart(title, "arithmetic intensity (FLOP/byte)", "TFLOP/s", {"roofline (datasheet peaks)": roof}, marks)


def cost_svg(d: Deployment, input_len: int, output_len: int, usd_per_gpu_hour: float | None, utilization: float) -> str:
    """USD per 1M output tokens and output tokens/s as concurrency grows."""
    cost, throughput = [], []
    for exponent in range(0, 12):
        concurrency = 2**exponent
        try:
            result = estimate(d, input_len, output_len, concurrency, usd_per_gpu_hour, utilization)
        except DoesNotFit:
            break
        cost.append((concurrency, result.usd_per_1m_output))
        throughput.append((concurrency, result.output_tok_s / 1000))
    title = f"{d.model.id} on {d.gpus} x {d.gpu.id}: {input_len} in / {output_len} out, utilization {utilization:.0%}"
    return line_chart(title, "concurrency (sequences in flight)", "USD per 1M output tokens | 1000 output tok/s",
                      {"USD per 1M output tokens": cost, "output tokens/s (thousands)": throughput})
