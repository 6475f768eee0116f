"""``tollgate pricing …``: estimate a self-hosted deployment, list catalogs, draw charts."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from pricing import architecture as arch
from pricing import catalog
from pricing.estimate import DoesNotFit, Estimate, estimate
from pricing.roofline import Deployment
from pricing.serving import Percentiles, ServingResult

from .output import print_rows

pricing_app = typer.Typer(no_args_is_help=True, help="Roofline pricing of self-hosted models.")

PRECISIONS = ", ".join(arch.BYTES_PER_VALUE)


def _deployment(model: str, gpu: str, gpus: int, precision: str, kv_precision: str | None, engine: str,
                efficiency: str | None = None) -> Deployment:
    try:
        if precision not in arch.BYTES_PER_VALUE or (kv_precision and kv_precision not in arch.BYTES_PER_VALUE):
            raise catalog.CatalogError(f"precision must be one of {PRECISIONS}")
        kv = kv_precision or ("bf16" if precision in ("int4", "fp4") else precision)
        deployment = Deployment(catalog.model(model), catalog.gpu(gpu), gpus, precision, kv, engine=engine)
        return deployment.with_efficiency(**_efficiency_overrides(efficiency)) if efficiency else deployment
    except (catalog.CatalogError, TypeError, ValueError) as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from None


def _efficiency_overrides(text: str) -> dict[str, float]:
    """``bandwidth=0.8,compute=0.5`` into a dict of floats."""
    overrides = {}
    for item in text.split(","):
        name, _, value = item.partition("=")
        overrides[name.strip()] = float(value)
    return overrides


@pricing_app.command("estimate")
def estimate_cmd(
    model: str = typer.Option(..., help="Catalog id (tollgate pricing models) or a config.json path."),
    gpu: str = typer.Option(..., help="Catalog id (tollgate pricing gpus)."),
    gpus: int = typer.Option(1, min=1, help="GPUs in one deployment (tensor parallelism)."),
    precision: str = typer.Option("bf16", help=f"Weight precision: {PRECISIONS}."),
    kv_precision: str | None = typer.Option(None, help="KV-cache precision (default: the weights', 16-bit for int4)."),
    input_len: int = typer.Option(..., min=1, help="Prompt tokens per request."),
    output_len: int = typer.Option(..., min=1, help="Generated tokens per request."),
    concurrency: int | None = typer.Option(None, min=1, help="Closed loop: C clients, each sending again when answered."),
    batch: int | None = typer.Option(None, min=1, help="Static batch: B requests at once, nothing after."),
    request_rate: float | None = typer.Option(None, min=0.001, help="Open loop: Poisson arrivals, requests per second."),
    max_num_seqs: int = typer.Option(256, min=1, help="The engine's sequence slots (vLLM's --max-num-seqs)."),
    usd_per_gpu_hour: float | None = typer.Option(None, min=0.0, help="GPU price (default: the catalog's)."),
    utilization: float = typer.Option(1.0, min=0.01, max=1.0, help="Share of paid time the deployment is busy (planning)."),
    engine: str = typer.Option("vllm", help="Engine profile: vllm, sglang, tgi, llamacpp, tensorrt-llm, lmdeploy."),
    efficiency: str | None = typer.Option(None, help="Override calibrated factors, e.g. bandwidth=0.8,compute=0.5,step_overhead_s=0.002."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Latency, throughput, capacity and USD per 1M tokens of one deployment under one serving
    scenario (exactly one of --concurrency, --batch, --request-rate), run by the simulator's
    scheduler in virtual time."""
    from pricing.serving import serve

    if sum(x is not None for x in (concurrency, batch, request_rate)) != 1:
        typer.echo("error: give exactly one of --concurrency, --batch or --request-rate", err=True)
        raise typer.Exit(2)
    d = _deployment(model, gpu, gpus, precision, kv_precision, engine, efficiency)
    try:
        steady = estimate(d, input_len, output_len, concurrency or batch or 1, usd_per_gpu_hour, utilization)
    except DoesNotFit as err:
        if as_json:
            typer.echo(json.dumps({"error": str(err), "fits": False}))
        else:
            typer.echo(f"does not fit: {err}", err=True)
        raise typer.Exit(1) from None
    served = serve(d, input_len, output_len, concurrency=concurrency, batch=batch, rate=request_rate,
                   max_num_seqs=max_num_seqs)
    if request_rate is not None:  # the input/output cost split at the batch the arrivals made
        steady = estimate(d, input_len, output_len, max(round(served.mean_running), 1), usd_per_gpu_hour, utilization)
    result = scenario_figures(served, steady, utilization)
    if as_json:
        typer.echo(json.dumps(result))
        return
    scenario = (f"closed loop, {concurrency} clients" if concurrency else f"static batch of {batch}" if batch
                else f"open loop, Poisson {request_rate:g} requests/s")
    rows = [
        ("scenario", scenario + (" (SATURATED: arrivals outpace the deployment)" if served.saturated else "")),
        ("time to first token", _ms(served.ttft_s)),
        ("time per output token", _ms(served.tpot_s)),
        ("output tokens/s", f"{served.output_tok_s:,.0f}"),
        ("requests/s", f"{served.requests_per_s:,.2f}"),
        ("sequences running", f"{served.mean_running:,.1f} on average (memory holds {steady.max_concurrency} "
                              f"of {input_len + output_len} tokens each); {served.mean_waiting:,.1f} waiting"),
        ("weights", f"{steady.weights_gb:,.1f} GB"),
        ("KV cache per token", f"{steady.kv_bytes_per_token:,.0f} bytes"),
        ("deployment cost", f"${steady.usd_per_hour:,.2f}/hour at {utilization:.0%} utilization"),
        ("USD per 1M input tokens", f"${result['usd_per_1m_input']:,.4f}"),
        ("USD per 1M output tokens", f"${result['usd_per_1m_output']:,.4f}"),
    ]
    width = max(len(label) for label, _ in rows)
    typer.echo(f"{d.model.id} on {gpus} x {d.gpu.id}, {precision} weights, {d.kv_precision} KV, {engine}")
    for label, value in rows:
        typer.echo(f"  {label.ljust(width)}  {value}")


def _ms(p: Percentiles) -> str:
    return f"mean {p.mean * 1000:,.1f} ms, p50 {p.p50 * 1000:,.1f}, p95 {p.p95 * 1000:,.1f}"


def scenario_figures(served: ServingResult, steady: Estimate, utilization: float) -> dict[str, object]:
    """The JSON figures: latencies in ms, throughput, and cost per 1M tokens = $/hour / tokens per
    hour (at the planned utilization), split between input and output by their shares of GPU time
    at this batch (prefill compute against decode steps)."""
    usd_per_s = steady.usd_per_hour / 3600 / utilization
    prefill_time = steady.usd_per_1m_input * (steady.total_tok_s - steady.output_tok_s)  # shares of GPU time
    decode_time = steady.usd_per_1m_output * steady.output_tok_s
    prefill_fraction = prefill_time / max(prefill_time + decode_time, 1e-12)
    return {
        "scenario": served.scenario,
        "saturated": served.saturated,
        "ttft_ms": {k: round(v * 1000, 3) for k, v in vars(served.ttft_s).items()},
        "tpot_ms": {k: round(v * 1000, 3) for k, v in vars(served.tpot_s).items()},
        "e2e_ms": {k: round(v * 1000, 3) for k, v in vars(served.e2e_s).items()},
        "output_tok_s": served.output_tok_s,
        "input_tok_s": served.input_tok_s,
        "total_tok_s": served.output_tok_s + served.input_tok_s,
        "requests_per_s": served.requests_per_s,
        "mean_running": served.mean_running,
        "mean_waiting": served.mean_waiting,
        "max_concurrency": steady.max_concurrency,
        "weights_gb": steady.weights_gb,
        "kv_bytes_per_token": steady.kv_bytes_per_token,
        "kv_capacity_tokens": steady.kv_capacity_tokens,
        "critical_batch": steady.critical_batch,
        "usd_per_hour": steady.usd_per_hour,
        "usd_per_1m_input": usd_per_s * prefill_fraction / max(served.input_tok_s, 1e-12) * 1e6,
        "usd_per_1m_output": usd_per_s * (1 - prefill_fraction) / max(served.output_tok_s, 1e-12) * 1e6,
    }


@pricing_app.command("models")
def models_cmd(as_json: bool = typer.Option(False, "--json")) -> None:
    """List catalog models."""
    rows = [{"id": m.id, "params_b": round(arch.total_params(m) / 1e9, 2), "active_b": round(arch.active_params(m) / 1e9, 2),
             "layers": m.layers, "attention": m.attention, "kv_bytes_per_token_bf16": arch.kv_bytes_per_token(m, "bf16")}
            for m in catalog.shipped_models().values()]
    print_rows(rows, list(rows[0]), as_json)


@pricing_app.command("gpus")
def gpus_cmd(as_json: bool = typer.Option(False, "--json")) -> None:
    """List catalog GPUs (dense peaks; prices are defaults to override)."""
    rows = [{"id": g.id, "memory_gb": g.memory_gb, "bandwidth_tb_s": g.memory_bandwidth_tb_s,
             "bf16_tflops": g.dense_tflops.get("bf16"), "fp8_tflops": g.dense_tflops.get("fp8"), "usd_per_hour": g.usd_per_hour}
            for g in catalog.shipped_gpus().values()]
    print_rows(rows, list(rows[0]), as_json)


@pricing_app.command("plot")
def plot_cmd(
    model: str = typer.Option(...),
    gpu: str = typer.Option(...),
    gpus: int = typer.Option(1, min=1),
    precision: str = typer.Option("bf16"),
    kv_precision: str | None = typer.Option(None),
    input_len: int = typer.Option(1024, min=1),
    output_len: int = typer.Option(256, min=1),
    usd_per_gpu_hour: float | None = typer.Option(None, min=0.0),
    utilization: float = typer.Option(1.0, min=0.01, max=1.0),
    out: Path = typer.Option(Path("."), help="Folder for roofline.svg and cost.svg."),
) -> None:
    """Draw the roofline and cost-versus-concurrency charts as SVG files."""
    from pricing.plot import cost_svg, roofline_svg

    d = _deployment(model, gpu, gpus, precision, kv_precision, "vllm")
    out.mkdir(parents=True, exist_ok=True)
    (out / "roofline.svg").write_text(roofline_svg(d, input_len + output_len // 2))
    (out / "cost.svg").write_text(cost_svg(d, input_len, output_len, usd_per_gpu_hour, utilization))
    typer.echo(f"wrote {out / 'roofline.svg'} and {out / 'cost.svg'}")
