"""``tollgate pricing …``: estimate a self-hosted deployment, list catalogs, draw charts."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from pricing import architecture as arch
from pricing import catalog
from pricing import plan as planner
from pricing.estimate import DoesNotFit, Estimate, estimate
from pricing.roofline import Deployment
from pricing.serving import Percentiles, ServingResult

from .output import print_rows
from .progress import progress

pricing_app = typer.Typer(no_args_is_help=True, help="Roofline pricing of self-hosted models.")

PRECISIONS = ", ".join(arch.BYTES_PER_VALUE)


def _deployment(model: str, gpu: str, gpus: int, precision: str, kv_precision: str | None, engine: str,
                efficiency: str | None = None) -> Deployment:
    try:
        if precision not in arch.BYTES_PER_VALUE or (kv_precision and kv_precision not in arch.BYTES_PER_VALUE):
            raise catalog.CatalogError(f"precision must be one of {PRECISIONS}")
        kv = kv_precision or ("bf16" if precision in ("int4", "fp4") else precision)
        deployment = Deployment(catalog.model(model), catalog.gpu(gpu), gpus, precision, kv, engine=engine)
        return deployment.with_efficiency(**_key_values(efficiency)) if efficiency else deployment
    except (catalog.CatalogError, TypeError, ValueError) as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from None


def _key_values(text: str) -> dict[str, float]:
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
    engine: str = typer.Option("vllm", help="Engine profile."),
    out: Path = typer.Option(Path("."), help="Folder for roofline.png/.svg and cost.png/.svg."),
) -> None:
    """Draw the roofline chart and cost and throughput against concurrency (PNG and SVG)."""
    from pricing.charts import cost_chart, roofline_chart

    d = _deployment(model, gpu, gpus, precision, kv_precision, engine)
    written = roofline_chart(d, input_len + output_len // 2, out)
    written += cost_chart(d, input_len, output_len, usd_per_gpu_hour, utilization, out)
    typer.echo(f"wrote {', '.join(str(p) for p in written)}")


@pricing_app.command("update")
def update_cmd(
    source: Path = typer.Option(..., "--from", exists=True, dir_okay=False,
                                help="LiteLLM's model_prices_and_context_window.json (or a Tollgate snapshot)."),
    as_of: str | None = typer.Option(None, help="The prices' date (default: today, UTC)."),
    config: Path | None = typer.Option(None, "--config", help="The gateway's config: its data_dir gets the table."),
) -> None:
    """Replace the API price table with a newer one: written to <data_dir>/api_prices.json, which
    the gateway reads at start-up in place of the shipped snapshot (restart to apply)."""
    import datetime

    from gateway.config import ConfigError, load_settings
    from pricing.api_table import UPDATED_NAME, parse_snapshot, price_table, snapshot_from_litellm

    try:
        data_dir = Path(load_settings(config).data_dir)
        document = json.loads(source.read_text())
        if isinstance(document, dict) and "models" in document and "as_of" in document:
            snapshot = document  # already a snapshot (one taken on another host, say)
        else:
            date = as_of or datetime.datetime.now(datetime.UTC).date().isoformat()
            snapshot = snapshot_from_litellm(document, date, f"LiteLLM price map {source.name}, imported {date}")
        new = parse_snapshot(snapshot, "updated")
    except (ConfigError, OSError, ValueError) as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from None
    old = price_table(data_dir)
    changed = sum(1 for name, p in new.prices.items() if name in old.prices
                  and (p.input, p.output) != (old.prices[name].input, old.prices[name].output))
    data_dir.mkdir(parents=True, exist_ok=True)
    target = data_dir / UPDATED_NAME
    target.write_text(json.dumps(snapshot, indent=0))
    typer.echo(f"wrote {target}: {len(new.prices)} models as of {new.as_of} (was {len(old.prices)} as of {old.as_of}): "
               f"{len(set(new.prices) - set(old.prices))} new, {len(set(old.prices) - set(new.prices))} gone, "
               f"{changed} with new prices. Restart the gateway to apply.")


@pricing_app.command("prices")
def prices_cmd(
    search: str | None = typer.Argument(None, help="Part of a model name."),
    config: Path | None = typer.Option(None, "--config", help="The gateway's config (its data_dir's table)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """API prices in the table in force, USD per 1M tokens."""
    from gateway.config import load_settings
    from pricing.api_table import price_table

    table = price_table(load_settings(config).data_dir)
    rows = [{"model": name, "input": _per_m(p.input), "output": _per_m(p.output), "cached_input": _per_m(p.cached_input),
             "cache_write": _per_m(p.cache_write), "as_of": p.as_of}
            for name, p in sorted(table.prices.items()) if not search or search.lower() in name.lower()]
    if not as_json:
        typer.echo(f"{table.source}; as of {table.as_of}", err=True)
    print_rows(rows, ["model", "input", "output", "cached_input", "cache_write", "as_of"], as_json)


def _per_m(value: float | None) -> float | None:
    return None if value is None else round(value * 1e6, 6)


DEFAULT_APIS = ("gpt-4o-mini", "gpt-4.1-mini", "gemini-2.5-flash", "gpt-4o", "claude-sonnet-4-5")


@pricing_app.command("plan")
def plan_cmd(
    model: str = typer.Option(..., help="The model to serve: catalog id (tollgate pricing models) or a config.json path."),
    rate: float | None = typer.Option(None, min=0.0001, help="Requests per second (with --ledger: instead of its mean rate)."),
    input_len: int = typer.Option(1024, min=1, help="Mean prompt tokens per request (without --ledger)."),
    output_len: int = typer.Option(256, min=1, help="Mean generated tokens per request (without --ledger)."),
    spread: float = typer.Option(0.0, min=0.0, help="Coefficient of variation of the lengths (0: all alike; log-normal)."),
    ledger: Path | None = typer.Option(None, exists=True, dir_okay=False,
                                       help="A ledger export (tollgate ledger export > FILE): its calls' lengths and rate."),
    ledger_model: str | None = typer.Option(None, help="With --ledger: only the calls this public model answered."),
    ttft_p95_ms: float = typer.Option(2000.0, min=1.0, help="Objective: p95 time to first token."),
    tpot_p95_ms: float = typer.Option(100.0, min=0.1, help="Objective: p95 time per output token."),
    gpu: list[str] = typer.Option([], help="Candidate GPU (repeat; default: every catalog GPU)."),
    gpus: str = typer.Option("1,2,4,8", help="Candidate GPU counts per replica (tensor parallelism)."),
    precision: str = typer.Option("bf16,fp8,int4", help="Candidate weight precisions."),
    engine: str = typer.Option("vllm", help="Engine profile for every candidate."),
    max_num_seqs: int = typer.Option(256, min=1, help="The engine's sequence slots."),
    usd_per_gpu_hour: str | None = typer.Option(None, help="Your GPU prices, e.g. h100-sxm=2.1,l40s=0.9 (default: the catalog's)."),
    api: list[str] = typer.Option([], help="API model to compare (repeat; default: gpt-4o-mini, gpt-4.1-mini, gemini-2.5-flash, gpt-4o, claude-sonnet-4-5)."),
    top: int = typer.Option(10, min=1, help="Deployments to list."),
    plot: Path | None = typer.Option(None, help="Folder for plan.png and plan.svg: cost against request rate."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """What should I run this on? The deployments that meet the latency objectives for a traffic
    profile (or a ledger export), cheapest first, beside API models at their list prices: replicas,
    utilization, $/hour, $ per 1M input/output tokens, and the rate above which one replica costs
    less than each API model."""
    from pricing.api_table import price_table

    try:
        traffic = _traffic(rate, input_len, output_len, spread, ledger, ledger_model)
        arch_model = catalog.model(model)
        gpu_list = [catalog.gpu(g) for g in gpu] if gpu else list(catalog.shipped_gpus().values())
        counts = [int(c) for c in gpus.split(",")]
        precisions = [p.strip() for p in precision.split(",")]
        if unknown := [p for p in precisions if p not in arch.BYTES_PER_VALUE]:
            raise ValueError(f"unknown precision {', '.join(unknown)}; use {PRECISIONS}")
        prices = {k: float(v) for k, v in _key_values(usd_per_gpu_hour).items()} if usd_per_gpu_hour else {}
        table = price_table()
        names = api or list(DEFAULT_APIS)
        if missing := [n for n in names if n not in table.prices]:
            raise ValueError(f"not in the price table ({table.as_of}): {', '.join(missing)} (see tollgate pricing prices)")
    except (catalog.CatalogError, ValueError) as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from None
    longest = max(i + o for i, o in traffic.lengths)
    deployments = planner.candidate_deployments(arch_model, gpu_list, counts, precisions, longest, engine)
    objectives = planner.Objectives(ttft_p95_ms / 1000, tpot_p95_ms / 1000)
    with progress("candidates", len(deployments)) as step:
        options = planner.plan(traffic, objectives, deployments, {n: table.prices[n] for n in names}, top, max_num_seqs,
                               prices, on_candidate=step)
    if plot is not None:
        from pricing.charts import plan_chart

        written = plan_chart(options, traffic, {n: table.prices[n] for n in names}, plot)
    if as_json:
        typer.echo(json.dumps({"traffic": {"rate": traffic.rate, "mean_input": traffic.mean_input,
                                           "mean_output": traffic.mean_output, "source": traffic.source},
                               "objectives": {"ttft_p95_ms": ttft_p95_ms, "tpot_p95_ms": tpot_p95_ms},
                               "api_prices_as_of": table.as_of, "options": [vars(o) for o in options]}))
        return
    typer.echo(f"traffic: {traffic.source}" + ("" if len(traffic.lengths) == 1 else
               f"; sampled: {traffic.rate:.3g} requests/s, {traffic.mean_input:,.0f} in / {traffic.mean_output:,.0f} out on average"))
    typer.echo(f"objectives: p95 time to first token <= {ttft_p95_ms:g} ms, p95 time per output token <= {tpot_p95_ms:g} ms")
    self_hosted = [o for o in options if o.kind == "self-hosted"]
    typer.echo(f"{len(deployments)} candidate deployments of {arch_model.id} fit; {len(self_hosted)} cheapest that "
               f"meet the objectives, and API models at list prices ({table.as_of}):\n")
    print_rows([{"option": o.name, "replicas": o.replicas, "utilization": _share(o.utilization),
                 "usd_per_hour": round(o.usd_per_hour, 3), "usd_per_1m_in": round(o.usd_per_1m_input, 4),
                 "usd_per_1m_out": round(o.usd_per_1m_output, 4), "p95_ttft_ms": _round(o.ttft_p95_ms),
                 "p95_tpot_ms": _round(o.tpot_p95_ms, 1), "goodput_rps": _round(o.goodput_rps, 2)} for o in options],
               ["option", "replicas", "utilization", "usd_per_hour", "usd_per_1m_in", "usd_per_1m_out",
                "p95_ttft_ms", "p95_tpot_ms", "goodput_rps"])
    if self_hosted:
        typer.echo("\nbreak-even request rate per replica (one replica costs less than the API above it; "
                   "never: not even at its goodput):")
        print_rows([{"option": o.name, **{n: "never" if o.break_even_rps[n] is None else f"{o.break_even_rps[n]:.3g}/s"
                                          for n in names}} for o in self_hosted], ["option", *names])
    if not self_hosted:
        typer.echo("\nno candidate meets the objectives: loosen them, or add GPUs (--gpus) or precisions")
    if plot is not None:
        typer.echo(f"\nwrote {', '.join(str(p) for p in written)}")


def _traffic(rate: float | None, input_len: int, output_len: int, spread: float, ledger: Path | None,
             ledger_model: str | None) -> planner.Traffic:
    if ledger is None:
        if rate is None:
            raise ValueError("give --rate (requests per second), or --ledger with a ledger export")
        return planner.synthetic_traffic(rate, input_len, output_len, spread)
    try:
        records = [json.loads(line) for line in ledger.read_text().splitlines() if line.strip()]
    except json.JSONDecodeError as err:
        raise ValueError(f"{ledger} is not JSON Lines (tollgate ledger export): {err}") from None
    traffic = planner.traffic_from_ledger(records, ledger_model)
    return traffic.with_rate(rate) if rate else traffic


def _share(value: float | None) -> str | None:
    return None if value is None else f"{value:.0%}"


def _round(value: float | None, digits: int = 0) -> float | None:
    return None if value is None else round(value, digits)
