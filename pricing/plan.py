"""What should I run this on? Candidate deployments and API models ranked by cost for one traffic profile.

A deployment's price per token follows from $/hour / tokens per hour, but how many tokens an hour
it may serve is decided by the latency objectives, not by its peak throughput: past some request
rate, queueing pushes the p95 time to first token (or the p95 time per output token, as batches
grow) over the objective. That rate, the deployment's *goodput*, is found here by running the
serving scheduler (``serving.open_loop``: Poisson arrivals with the profile's own length mix,
continuous batching, KV-cache limits) at increasing rates, bisecting for the highest that meets
both objectives and does not saturate. Then:

- replicas = ceil(profile rate / goodput), each taking an equal share of the arrivals;
- utilization = profile rate / (replicas x goodput): the share of the capacity the objectives
  allow that the traffic uses (the rest is paid for and idle, or headroom);
- $/hour = replicas x GPUs x $/GPU-hour; $ per 1M input and output tokens = that $/hour over the
  profile's tokens per hour, split between input and output by their shares of GPU time
  (prefill compute against decode steps) at the batch the replicas run;
- break-even against an API model: one replica costs less than sending the same requests to the
  API above rate = replica $/hour / (3600 x API $ per request); "never" when a replica running at
  its goodput still costs more per request than the API.

API models are ranked beside the deployments at their list prices (their latency is not modelled).
Candidates are evaluated cheapest lower bound first (a replica cannot serve more than its
saturated throughput), and evaluation stops once the bound exceeds the ``top``-th plan found, so
a search over the whole catalog takes seconds.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from . import roofline
from .catalog import GPU, ModelArch
from .estimate import DoesNotFit, estimate, prefill_fraction
from .prices import TokenPrices
from .roofline import Deployment
from .serving import DEFAULT_MAX_NUM_SEQS, RooflineTiming, ServingResult, open_loop

SEARCH_REQUESTS = 400  # simulated requests per rate tried: p95 within a few percent, ~0.1 s each
BISECTIONS = 9  # geometric bisection steps over a 64x range: the goodput to within ~1.5%


@dataclass(frozen=True)
class Traffic:
    """Requests per second and a sample of their (input, output) token lengths."""

    rate: float
    lengths: tuple[tuple[int, int], ...]
    source: str

    @property
    def mean_input(self) -> float:
        return sum(i for i, _ in self.lengths) / len(self.lengths)

    @property
    def mean_output(self) -> float:
        return sum(o for _, o in self.lengths) / len(self.lengths)

    def percentile_input(self, share: float) -> int:
        ordered = sorted(i for i, _ in self.lengths)
        return ordered[min(int(len(ordered) * share), len(ordered) - 1)]

    def with_rate(self, rate: float) -> Traffic:
        return Traffic(rate, self.lengths, self.source)


def synthetic_traffic(rate: float, input_len: int, output_len: int, spread: float = 0.0, samples: int = 400,
                      seed: int = 0) -> Traffic:
    """Lengths with these means; ``spread`` > 0 draws them log-normally with that coefficient of
    variation (real prompt and answer lengths are skewed: a few long ones, many short)."""
    if rate <= 0 or input_len < 1 or output_len < 1 or spread < 0:
        raise ValueError("rate, input and output lengths must be positive and spread not negative")
    if spread == 0:
        return Traffic(rate, ((input_len, output_len),), f"{rate:g} requests/s of {input_len} in / {output_len} out")
    rng = random.Random(seed)
    sigma = math.sqrt(math.log(1 + spread**2))

    def draw(mean: int) -> int:
        return max(1, round(rng.lognormvariate(math.log(mean) - sigma**2 / 2, sigma)))

    lengths = tuple((draw(input_len), draw(output_len)) for _ in range(samples))
    return Traffic(rate, lengths, f"{rate:g} requests/s, {input_len} in / {output_len} out on average "
                                  f"(log-normal, variation {spread:g})")


def traffic_from_ledger(records: Iterable[Mapping[str, object]], model: str | None = None,
                        max_samples: int = 2000) -> Traffic:
    """A profile from ledger records (``tollgate ledger export``): answered calls' token counts,
    and their mean rate over the export's span (first to last call). ``model`` keeps only calls
    that model answered."""
    times: list[float] = []
    lengths: list[tuple[int, int]] = []
    for record in records:
        if record.get("status") != 200 or (model and record.get("model") != model):
            continue
        prompt, completion, ts = record.get("prompt_tokens"), record.get("completion_tokens"), record.get("ts")
        if not isinstance(prompt, int) or not isinstance(completion, int) or not isinstance(ts, (int, float)):
            continue
        if prompt > 0 and completion > 0:
            times.append(float(ts))
            lengths.append((prompt, completion))
    if len(lengths) < 2 or max(times) <= min(times):
        raise ValueError("the export needs at least two answered calls at different times"
                         + (f" answered by {model}" if model else ""))
    rate = (len(times) - 1) / (max(times) - min(times))
    if len(lengths) > max_samples:  # an even sample keeps the mix and bounds the simulation's work
        lengths = random.Random(0).sample(lengths, max_samples)
    return Traffic(rate, tuple(lengths), f"{len(times)} calls over {(max(times) - min(times)) / 3600:.2f} h "
                                         f"from a ledger export{f' ({model})' if model else ''}")


@dataclass(frozen=True)
class Objectives:
    ttft_p95_s: float
    tpot_p95_s: float

    def met_by(self, result: ServingResult) -> bool:
        return (not result.saturated and result.ttft_s.p95 <= self.ttft_p95_s
                and result.tpot_s.p95 <= self.tpot_p95_s)


@dataclass(frozen=True)
class Option:
    """One way to serve the profile, at the profile's rate."""

    name: str
    kind: str  # self-hosted or api
    usd_per_hour: float
    usd_per_1m_input: float
    usd_per_1m_output: float
    replicas: int | None = None
    gpu: str | None = None
    gpus: int | None = None
    precision: str | None = None
    goodput_rps: float | None = None  # one replica's, under the objectives
    utilization: float | None = None
    ttft_p95_ms: float | None = None  # at the profile's rate spread over the replicas
    tpot_p95_ms: float | None = None
    replica_usd_per_hour: float | None = None
    break_even_rps: dict[str, float | None] = field(default_factory=dict)  # API model -> rate, None: never

    def usd_per_hour_at(self, rate: float, api_usd_per_request: float | None = None) -> float:
        """What this option costs per hour at another request rate (self-hosted: whole replicas)."""
        if self.kind == "api":
            assert api_usd_per_request is not None
            return rate * 3600 * api_usd_per_request
        assert self.goodput_rps and self.replica_usd_per_hour is not None
        return max(math.ceil(rate / self.goodput_rps - 1e-9), 1) * self.replica_usd_per_hour


def tensor_parallel_ok(model: ModelArch, gpus: int) -> bool:
    """vLLM splits attention heads evenly: query heads must divide, KV heads divide or be replicated."""
    return model.heads % gpus == 0 and (model.kv_heads % gpus == 0 or gpus % model.kv_heads == 0)


def candidate_deployments(model: ModelArch, gpus: Sequence[GPU], counts: Sequence[int], precisions: Sequence[str],
                          longest: int, engine: str = "vllm") -> list[Deployment]:
    """Every (GPU, count, precision) where the weights and one sequence of ``longest`` tokens fit."""
    found = []
    for gpu in gpus:
        for count in counts:
            if not tensor_parallel_ok(model, count):
                continue
            for precision in precisions:
                kv = "bf16" if precision in ("int4", "fp4") else precision
                d = Deployment(model, gpu, count, precision, kv, engine=engine)
                if roofline.max_concurrency(d, longest) >= 1:
                    found.append(d)
    return found


def api_usd_per_request(prices: TokenPrices, traffic: Traffic) -> float:
    return traffic.mean_input * prices.input + traffic.mean_output * prices.output


def goodput(d: Deployment, traffic: Traffic, objectives: Objectives, max_num_seqs: int = DEFAULT_MAX_NUM_SEQS,
            requests: int = SEARCH_REQUESTS) -> tuple[float, ServingResult] | None:
    """The highest request rate one replica serves within the objectives, and how it serves it;
    None when not even a trickle of this traffic meets them (one request's own prefill or decode
    step is already too slow)."""
    context = traffic.mean_input + traffic.mean_output / 2
    if roofline.decode_step_seconds(d, 1, context) > objectives.tpot_p95_s:
        return None
    if roofline.prefill_seconds(d, traffic.percentile_input(0.95)) > objectives.ttft_p95_s:
        return None
    ceiling = saturated_rate(d, traffic, max_num_seqs)
    timing, capacity = RooflineTiming(d), roofline.kv_capacity_tokens(d)
    budget = roofline.engine_profile(d.engine).max_batched_tokens

    def run(rate: float) -> ServingResult:
        return open_loop(timing, capacity, traffic.lengths, rate, max_num_seqs, requests, budget=budget)

    low, high = ceiling / 64, ceiling * 1.05
    best = run(low)
    if not objectives.met_by(best):
        return None
    top = run(high)
    if objectives.met_by(top):
        return high, top
    for _ in range(BISECTIONS):
        middle = math.sqrt(low * high)
        result = run(middle)
        if objectives.met_by(result):
            low, best = middle, result
        else:
            high = middle
    return low, best


def saturated_rate(d: Deployment, traffic: Traffic, max_num_seqs: int = DEFAULT_MAX_NUM_SEQS) -> float:
    """Requests/s at the largest batch memory and the engine allow: no replica serves more."""
    mean_in, mean_out = max(round(traffic.mean_input), 1), max(round(traffic.mean_output), 1)
    batch = min(max_num_seqs, roofline.max_concurrency(d, mean_in + mean_out))
    return estimate(d, mean_in, mean_out, max(batch, 1)).output_tok_s / mean_out


def describe(d: Deployment) -> str:
    return f"{d.model.id} on {d.gpus} x {d.gpu.id}, {d.weight_precision}"


def plan(traffic: Traffic, objectives: Objectives, deployments: Sequence[Deployment],
         apis: Mapping[str, TokenPrices], top: int = 10, max_num_seqs: int = DEFAULT_MAX_NUM_SEQS,
         usd_per_gpu_hour: Mapping[str, float] | None = None, requests: int = SEARCH_REQUESTS,
         on_candidate: Callable[[int], None] = lambda n: None) -> list[Option]:
    """The ``top`` cheapest deployments that meet the objectives at the profile's rate, and every
    API model, cheapest per hour first. ``on_candidate(1)`` after each candidate is settled
    (simulated, or skipped by the bound), for a progress bar."""
    prices = dict(usd_per_gpu_hour or {})
    per_request = {name: api_usd_per_request(p, traffic) for name, p in apis.items()}

    def replica_usd_per_hour(d: Deployment) -> float:
        return prices.get(d.gpu.id, d.gpu.usd_per_hour) * d.gpus

    bounds = []
    for d in deployments:
        try:
            ceiling = saturated_rate(d, traffic, max_num_seqs)
        except DoesNotFit:
            continue
        bounds.append((math.ceil(traffic.rate / ceiling) * replica_usd_per_hour(d), describe(d), d))
    bounds.sort(key=lambda bound: (bound[0], bound[1]))
    found: list[Option] = []
    for index, (bound, _, d) in enumerate(bounds):
        if len(found) >= top and bound > sorted(o.usd_per_hour for o in found)[top - 1]:
            on_candidate(len(bounds) - index)
            break  # no deployment left can be among the cheapest
        option = _self_hosted_option(d, traffic, objectives, max_num_seqs, replica_usd_per_hour(d), per_request, requests)
        on_candidate(1)
        if option is not None:
            found.append(option)
    found = sorted(found, key=_cheapest_first)[:top]
    api_options = [Option(name, "api", traffic.rate * 3600 * per_request[name], p.input * 1e6, p.output * 1e6)
                   for name, p in apis.items()]
    return sorted(found + api_options, key=_cheapest_first)


def _cheapest_first(option: Option) -> tuple[float, float, str]:
    """By $/hour; at the same price, the one with the most headroom (goodput) first."""
    return option.usd_per_hour, -(option.goodput_rps or 0.0), option.name


def _self_hosted_option(d: Deployment, traffic: Traffic, objectives: Objectives, max_num_seqs: int,
                        replica_usd_per_hour: float, api_per_request: Mapping[str, float], requests: int) -> Option | None:
    found = goodput(d, traffic, objectives, max_num_seqs, requests)
    if found is None:
        return None
    rate, _ = found
    replicas = max(math.ceil(traffic.rate / rate - 1e-9), 1)
    timing, capacity = RooflineTiming(d), roofline.kv_capacity_tokens(d)
    budget = roofline.engine_profile(d.engine).max_batched_tokens
    served = open_loop(timing, capacity, traffic.lengths, traffic.rate / replicas, max_num_seqs, requests, budget=budget)
    usd_per_hour = replicas * replica_usd_per_hour
    mean_in, mean_out = max(round(traffic.mean_input), 1), max(round(traffic.mean_output), 1)
    prefill = prefill_fraction(d, mean_in, mean_out, max(round(served.mean_running), 1))
    tokens_per_hour_in, tokens_per_hour_out = traffic.rate * 3600 * traffic.mean_input, traffic.rate * 3600 * traffic.mean_output
    return Option(
        name=describe(d), kind="self-hosted", usd_per_hour=usd_per_hour,
        usd_per_1m_input=usd_per_hour * prefill / tokens_per_hour_in * 1e6,
        usd_per_1m_output=usd_per_hour * (1 - prefill) / tokens_per_hour_out * 1e6,
        replicas=replicas, gpu=d.gpu.id, gpus=d.gpus, precision=d.weight_precision, goodput_rps=rate,
        utilization=traffic.rate / (replicas * rate), ttft_p95_ms=served.ttft_s.p95 * 1000,
        tpot_p95_ms=served.tpot_s.p95 * 1000, replica_usd_per_hour=replica_usd_per_hour,
        break_even_rps={name: _break_even(replica_usd_per_hour, cost, rate) for name, cost in api_per_request.items()},
    )


def _break_even(replica_usd_per_hour: float, api_usd_per_request: float, goodput_rps: float) -> float | None:
    """The rate above which one replica costs less than the API; None if it never does."""
    if api_usd_per_request <= 0:
        return None
    rate = replica_usd_per_hour / (3600 * api_usd_per_request)
    return rate if rate <= goodput_rps else None
