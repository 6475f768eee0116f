"""Charts a person reads: the roofline, cost against concurrency, and the planner's cost against rate.

Drawn with matplotlib's object API (``Figure``, no pyplot state, no display needed), each saved
as PNG and SVG. Every quantity gets its own axis with its unit; legends sit outside the data;
log axes get plain-number tick labels.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from . import architecture as arch
from . import roofline
from .estimate import DoesNotFit, estimate
from .plan import Option, Traffic, api_usd_per_request
from .prices import TokenPrices
from .roofline import Deployment

COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf")


def _plain(value: float, _position: float = 0) -> str:
    """Tick labels as people write numbers: 0.01, 1, 1,000 (not 10^-2)."""
    if value == 0:
        return "0"
    if value >= 1:
        return f"{value:,.0f}"
    return f"{value:.{max(-math.floor(math.log10(value)), 1)}f}"


def _log_axis(axis: Axes, which: str) -> None:
    formatter = FuncFormatter(_plain)
    if which in ("x", "both"):
        axis.set_xscale("log")
        axis.xaxis.set_major_formatter(formatter)
    if which in ("y", "both"):
        axis.set_yscale("log")
        axis.yaxis.set_major_formatter(formatter)
    axis.grid(True, which="major", alpha=0.35)
    axis.grid(True, which="minor", alpha=0.12)


def _save(figure: Figure, folder: Path, stem: str) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{stem}.png", folder / f"{stem}.svg"]
    for path in paths:
        figure.savefig(path, dpi=150, bbox_inches="tight")
    return paths


def _dollars(text: str) -> str:
    """A dollar sign in a label is a price, not the start of matplotlib math text."""
    return text.replace("$", r"\$")


def _title(d: Deployment) -> str:
    return f"{d.model.id} on {d.gpus} × {d.gpu.id}, {d.weight_precision} weights"


def roofline_chart(d: Deployment, context: int, folder: Path, batches: Sequence[int] = (1, 8, 32, 128, 512)) -> list[Path]:
    """Attainable TFLOP/s against arithmetic intensity (the datasheet roof), with the decode step
    at several batch sizes: small batches sit on the bandwidth slope, large ones reach the roof."""
    bandwidth = d.gpu.memory_bandwidth_tb_s * 1e12 * d.gpus
    peak = d.gpu.peak_flops(d.compute_precision) * d.gpus
    ridge = peak / bandwidth
    intensities = [ridge * 10 ** (i / 20) for i in range(-60, 31)]
    figure = Figure(figsize=(8.5, 4.8), layout="constrained")
    axis = figure.add_subplot()
    axis.plot(intensities, [min(peak, i * bandwidth) / 1e12 for i in intensities], color="black", linewidth=2,
              label=f"roof: {d.gpu.memory_bandwidth_tb_s * d.gpus:g} TB/s, {peak / 1e12:,.0f} TFLOP/s ({d.compute_precision})")
    axis.axvline(ridge, color="grey", linestyle=":", linewidth=1)
    axis.annotate(f"ridge {ridge:,.0f} FLOP/byte", (ridge, peak / 1e12), textcoords="offset points", xytext=(6, -14),
                  color="grey", fontsize=9)
    for index, batch in enumerate(batches):
        flops = arch.decode_flops(d.model, batch, context)
        seconds = roofline.decode_step_seconds(d, batch, context)
        moved = roofline.decode_memory_seconds(d, batch, context) * bandwidth * d.eff.bandwidth
        axis.plot([flops / moved], [flops / seconds / 1e12], "o", color=COLORS[index % len(COLORS)], markersize=8,
                  label=f"decode step, batch {batch}: {seconds * 1000:,.1f} ms")
    _log_axis(axis, "both")
    axis.set_xlabel("arithmetic intensity (FLOP per byte moved)")
    axis.set_ylabel("attained TFLOP/s")
    axis.set_title(f"{_title(d)}: decode at context {context:,}", fontsize=11)
    axis.legend(loc="upper left", bbox_to_anchor=(1.02, 1), fontsize=9, frameon=False)
    return _save(figure, folder, "roofline")


def cost_chart(d: Deployment, input_len: int, output_len: int, usd_per_gpu_hour: float | None, utilization: float,
               folder: Path) -> list[Path]:
    """As concurrency grows: USD per 1M output tokens (top) and output tokens/s (bottom), up to
    what the KV cache holds."""
    points = []
    for exponent in range(0, 13):
        concurrency = 2**exponent
        try:
            result = estimate(d, input_len, output_len, concurrency, usd_per_gpu_hour, utilization)
        except DoesNotFit:
            break
        points.append((concurrency, result))
        if result.effective_concurrency < concurrency:
            break  # memory holds no more: the curves are flat from here
    figure = Figure(figsize=(8.5, 6.2), layout="constrained")
    cost_axis, speed_axis = figure.subplots(2, 1, sharex=True)
    xs = [c for c, _ in points]
    cost_axis.plot(xs, [r.usd_per_1m_output for _, r in points], "o-", color=COLORS[0], label="output tokens")
    cost_axis.plot(xs, [r.usd_per_1m_input for _, r in points], "s--", color=COLORS[2], label="input tokens")
    cost_axis.set_ylabel("USD per 1M tokens")
    cost_axis.legend(loc="upper left", bbox_to_anchor=(1.02, 1), frameon=False)
    speed_axis.plot(xs, [r.output_tok_s for _, r in points], "o-", color=COLORS[1], label="output tokens/s")
    speed_axis.set_ylabel("output tokens per second")
    speed_axis.set_xlabel("concurrency (sequences in flight)")
    for axis in (cost_axis, speed_axis):
        _log_axis(axis, "both")
    if points:
        limit = points[-1][1].max_concurrency
        for axis in (cost_axis, speed_axis):
            if limit <= xs[-1] * 2:
                axis.axvline(limit, color="grey", linestyle=":", linewidth=1)
        speed_axis.annotate(f"KV cache holds {limit:,} sequences", (limit, 0.04), xycoords=("data", "axes fraction"),
                            textcoords="offset points", xytext=(-6, 0), ha="right", color="grey", fontsize=9)
    price = (usd_per_gpu_hour if usd_per_gpu_hour is not None else d.gpu.usd_per_hour) * d.gpus
    cost_axis.set_title(_dollars(f"{_title(d)}: {input_len:,} in / {output_len:,} out, ${price:,.2f}/hour, "
                                 f"{utilization:.0%} utilization"), fontsize=11)
    return _save(figure, folder, "cost")


def plan_chart(options: Sequence[Option], traffic: Traffic, apis: Mapping[str, TokenPrices], folder: Path,
               best: int = 4) -> list[Path]:
    """USD per 1M tokens (input and output together, at the profile's mix) against request rate:
    the cheapest few deployments (a saw-tooth: each new replica is paid for in full before it
    fills) against API models (flat: list prices do not depend on volume)."""
    tokens_per_request = traffic.mean_input + traffic.mean_output
    hosted = [o for o in options if o.kind == "self-hosted"][:best]
    low, high = traffic.rate / 30, traffic.rate * 10
    for option in hosted:  # show where each deployment breaks even
        for rate in option.break_even_rps.values():
            if rate:
                low = min(low, rate / 3)
    rates = [low * (high / low) ** (i / 599) for i in range(600)]
    figure = Figure(figsize=(9, 6.5), layout="constrained")
    axis = figure.add_subplot()
    for index, option in enumerate(hosted):
        axis.plot(rates, [option.usd_per_hour_at(r) / (r * 3600 * tokens_per_request) * 1e6 for r in rates],
                  color=COLORS[index % len(COLORS)], linewidth=2,
                  label=_dollars(f"{option.name}: ${option.replica_usd_per_hour:,.2f}/h per replica, "
                                 f"{option.goodput_rps:,.2f} req/s each within the objectives"))
    for index, (name, prices) in enumerate(apis.items()):
        per_million = api_usd_per_request(prices, traffic) / tokens_per_request * 1e6
        axis.axhline(per_million, color=COLORS[(index + len(hosted)) % len(COLORS)], linestyle="--", linewidth=1.5,
                     label=_dollars(f"API {name}: ${prices.input * 1e6:g} in / ${prices.output * 1e6:g} out per 1M"))
    axis.axvline(traffic.rate, color="black", linestyle=":", linewidth=1)
    axis.annotate(f"this traffic: {traffic.rate:,.3g} req/s", (traffic.rate, 1), xycoords=("data", "axes fraction"),
                  textcoords="offset points", xytext=(-4, -12), ha="right", fontsize=9)
    _log_axis(axis, "both")
    axis.set_xlabel("requests per second")
    axis.set_ylabel("USD per 1M tokens (input + output)")
    axis.set_title(f"{traffic.mean_input:,.0f} in / {traffic.mean_output:,.0f} out per request on average: "
                   "cost against request rate", fontsize=11)
    axis.legend(loc="upper left", bbox_to_anchor=(0, -0.12), fontsize=8.5, frameon=False)
    return _save(figure, folder, "plan")
