"""A serving engine's scheduler in virtual time: latency and throughput under load, in milliseconds of CPU.

``pricing estimate`` and ``pricing plan`` need what a deployment does under the scenarios that
published benchmarks use, and where requests wait: for a decode slot, or for KV-cache room when
the sequences in flight do not fit. Rather than a second, closed-form model, this runs the same
step timing as the live simulator (``engine.step_seconds``: new prompts prefilled within the
running batch's step), timed by the same roofline model, with vLLM's scheduling rules in full (a
token budget per step, chunked prefill, KV blocks taken as sequences grow, preemption when they
run out), on a virtual clock: no sleeping, no event loop.

Scenarios (``closed``, ``static``, ``open``) differ only in when requests arrive:

- closed loop, ``concurrency`` clients, each sending its next request when its last one ends (how
  lmdeploy's profile_generation and NVIDIA's AIPerf ``--concurrency`` measure);
- static batch: ``batch`` requests at once, nothing after (TensorRT-LLM's gptSessionBenchmark);
- open loop: Poisson arrivals at ``rate`` requests/s (vLLM's ``benchmark_serving --request-rate``).
"""

from __future__ import annotations

import heapq
import random
import statistics
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from . import roofline
from .roofline import Deployment


def step_seconds(timing: TimingModel, prefills: list[tuple[int, int]], decoding: int, decoding_context: float) -> float:
    """One scheduler step. Like vLLM's chunked prefill, new prompts (new, cached tokens) ride along
    with the running batch's decode step, adding their compute; an engine with nothing to decode
    reads the weights for the first prefill on its own. (This is the pricing model's own accounting
    of a call.) ``decoding_context`` is the decoding sequences' contexts summed."""
    if not decoding:
        first, rest = (prefills[0], prefills[1:]) if prefills else ((0, 0), [])
        return timing.prefill_seconds(*first) + sum(timing.prefill_compute_seconds(*p) for p in rest)
    return (timing.decode_step_seconds(decoding, decoding_context / decoding)
            + sum(timing.prefill_compute_seconds(*p) for p in prefills))


class TimingModel(Protocol):
    def prefill_seconds(self, new_tokens: int, cached_tokens: int) -> float: ...

    def prefill_compute_seconds(self, new_tokens: int, cached_tokens: int) -> float: ...

    def decode_step_seconds(self, batch: int, mean_context: float) -> float: ...


@dataclass(frozen=True)
class RooflineTiming:
    deployment: Deployment

    def prefill_seconds(self, new_tokens: int, cached_tokens: int) -> float:
        return roofline.prefill_seconds(self.deployment, new_tokens, cached_tokens)

    def prefill_compute_seconds(self, new_tokens: int, cached_tokens: int) -> float:
        return roofline.prefill_compute_seconds(self.deployment, new_tokens, cached_tokens)

    def decode_step_seconds(self, batch: int, mean_context: float) -> float:
        return roofline.decode_step_seconds(self.deployment, batch, mean_context)


DEFAULT_MAX_NUM_SEQS = 256  # vLLM's default
DEFAULT_MAX_BATCHED_TOKENS = 8192  # vLLM's default token budget per step for its API server


@dataclass(eq=False)  # each request is itself: two alike are still two
class ScheduledRequest:
    arrival: float
    input_len: int
    output_len: int
    first_token: float = -1.0
    finished: float = -1.0
    emitted: int = 0
    prefilled: int = 0  # of the tokens to prefill: the prompt (and, after a preemption, what was generated)
    owner: Any = field(default=None, repr=False)  # the live simulator's sequence behind it

    @property
    def to_prefill(self) -> int:
        return self.input_len + self.emitted

    @property
    def context(self) -> int:
        return self.input_len + self.emitted


@dataclass(frozen=True)
class Percentiles:
    mean: float
    p50: float
    p95: float

    @classmethod
    def of(cls, values: list[float]) -> Percentiles:
        ordered = sorted(values)
        return cls(statistics.fmean(ordered), ordered[len(ordered) // 2], ordered[min(int(len(ordered) * 0.95), len(ordered) - 1)])


@dataclass(frozen=True)
class ServingResult:
    scenario: str  # closed, static or open
    requests: int  # measured (after the warm-up)
    ttft_s: Percentiles
    tpot_s: Percentiles
    e2e_s: Percentiles
    output_tok_s: float
    input_tok_s: float
    requests_per_s: float
    mean_running: float  # sequences decoding per step, time-weighted
    mean_waiting: float  # requests waiting for a slot or KV room, time-weighted
    saturated: bool  # open loop: arrivals outpace the deployment (its queue keeps growing)


@dataclass(frozen=True)
class StepPlan:
    """What one step computes: the sequences decoding, the prompt chunks, and how long it takes."""

    decoding: list[ScheduledRequest]
    chunks: list[tuple[ScheduledRequest, int]]
    seconds: float


class Scheduler:
    """vLLM's scheduling, in miniature: each step, decoding sequences take one token of the step's
    token budget and prefills (chunked) the rest; a new request is admitted while there are slots,
    budget and KV room for its prompt; KV blocks are taken as sequences grow, and when they run out
    the newest sequence is preempted (its KV freed, recomputed when it is admitted again).

    ``step`` runs one step on the virtual clock. The live simulator (enginesim/engine.py) runs the
    same steps on a real one: ``plan_step``, a sleep of its seconds, ``finish_step``; its prefix
    cache tells ``on_admit`` how many prompt tokens an admitted request finds already computed."""

    def __init__(self, timing: TimingModel, kv_capacity_tokens: float, max_num_seqs: int,
                 max_batched_tokens: int | None = DEFAULT_MAX_BATCHED_TOKENS,
                 on_admit: Callable[[ScheduledRequest], int] | None = None) -> None:
        self.timing = timing
        self.on_admit = on_admit
        self.capacity = kv_capacity_tokens
        self.max_num_seqs = max_num_seqs
        self.budget = max_batched_tokens if max_batched_tokens is not None else 1 << 60  # None: whole prompts
        self.now = 0.0
        self.waiting: deque[ScheduledRequest] = deque()
        self.running: list[ScheduledRequest] = []
        self.used = 0  # KV tokens held by the running sequences
        self.running_area = 0.0
        self.waiting_area = 0.0
        self.preemptions = 0

    def step(self) -> list[ScheduledRequest]:
        """One step; returns the requests that finished in it."""
        return self.finish_step(self.plan_step())[1]

    def plan_step(self) -> StepPlan:
        """The next step: decodes, chunks of prompts under way, and admissions within the budget."""
        decoding = [r for r in self.running if r.prefilled >= r.to_prefill]
        budget = self.budget - len(decoding)
        chunks: list[tuple[ScheduledRequest, int]] = []
        for request in self.running:  # prefills under way, oldest first
            if request.prefilled < request.to_prefill and budget > 0:
                chunk = min(request.to_prefill - request.prefilled, budget)
                chunks.append((request, chunk))
                budget -= chunk
        while budget > 0 and self.waiting and len(self.running) < self.max_num_seqs:
            request = self.waiting[0]
            if self.running and self.used + request.to_prefill + 1 > self.capacity:
                break
            self.waiting.popleft()
            request.prefilled = self.on_admit(request) if self.on_admit else 0  # a prefix cache's hit
            self.used += request.to_prefill
            self.running.append(request)
            chunk = min(request.to_prefill - request.prefilled, budget)
            chunks.append((request, chunk))
            budget -= chunk
        seconds = step_seconds(self.timing, [(c, r.prefilled) for r, c in chunks], len(decoding),
                               sum(r.context for r in decoding))
        return StepPlan(decoding, chunks, seconds)

    def finish_step(self, plan: StepPlan) -> tuple[list[ScheduledRequest], list[ScheduledRequest]]:
        """The step done: prompts advanced, a token for every sequence decoding or done prefilling,
        finished ones out, the newest preempted while KV runs short. Returns (those that got a
        token, those that finished)."""
        seconds = plan.seconds
        self.running_area += len(plan.decoding) * seconds
        self.waiting_area += len(self.waiting) * seconds  # requests join it when they arrive
        self.now += seconds
        for request, chunk in plan.chunks:
            request.prefilled += chunk
        emitted, finished = [], []
        for request in self.running:
            if request.prefilled < request.to_prefill:
                continue  # still prefilling
            request.emitted += 1  # decoded, or its prefill just completed: one token either way
            request.prefilled += 1  # the new token is in the KV cache
            self.used += 1
            emitted.append(request)
            if request.first_token < 0:
                request.first_token = self.now
            if request.emitted >= request.output_len:
                request.finished = self.now
                finished.append(request)
        if finished:
            self.running = [r for r in self.running if r.finished < 0]
            self.used -= sum(r.context for r in finished)
        while self.used > self.capacity and len(self.running) > 1:  # out of KV blocks: preempt the newest
            victim = self.running.pop()
            self.used -= victim.context  # what it reserved at admission, and a block per token since
            victim.prefilled = 0
            self.waiting.appendleft(victim)
            self.preemptions += 1
        return emitted, finished

    def drop(self, request: ScheduledRequest) -> None:
        """A request whose client went away: out of the queue, or out of the batch with its KV freed."""
        if request in self.waiting:
            self.waiting.remove(request)
        elif request in self.running:
            self.running.remove(request)
            self.used -= request.context


def _summarize(scenario: str, measured: list[ScheduledRequest], start: float, end: float, scheduler: Scheduler,
               saturated: bool = False) -> ServingResult:
    span = max(end - start, 1e-9)
    in_window = [r for r in measured if start <= r.finished <= end]
    outputs = sum(r.output_len for r in in_window)
    inputs = sum(r.input_len for r in in_window)
    tpots = [(r.finished - r.first_token) / (r.output_len - 1) for r in measured if r.output_len > 1]
    return ServingResult(
        scenario=scenario,
        requests=len(measured),
        ttft_s=Percentiles.of([r.first_token - r.arrival for r in measured]),
        tpot_s=Percentiles.of(tpots or [0.0]),
        e2e_s=Percentiles.of([r.finished - r.arrival for r in measured]),
        output_tok_s=outputs / span,
        input_tok_s=inputs / span,
        requests_per_s=len(in_window) / span,
        mean_running=scheduler.running_area / max(scheduler.now, 1e-9),
        mean_waiting=scheduler.waiting_area / max(scheduler.now, 1e-9),
        saturated=saturated,
    )


def closed_loop(timing: TimingModel, kv_capacity_tokens: float, input_len: int, output_len: int, concurrency: int,
                max_num_seqs: int = DEFAULT_MAX_NUM_SEQS, rounds: int = 6,
                budget: int | None = DEFAULT_MAX_BATCHED_TOKENS) -> ServingResult:
    """``concurrency`` clients, all starting at once, each sending again as soon as it is answered;
    measured after the first round of requests (the warm-up), over ``rounds`` more."""
    scheduler = Scheduler(timing, kv_capacity_tokens, max_num_seqs, budget)
    scheduler.waiting.extend(ScheduledRequest(0.0, input_len, output_len) for _ in range(concurrency))
    done: list[ScheduledRequest] = []
    target = concurrency * (rounds + 1)
    while len(done) < target:
        for request in scheduler.step():
            done.append(request)
            scheduler.waiting.append(ScheduledRequest(scheduler.now, input_len, output_len))
    warm = done[concurrency - 1].finished
    measured = [r for r in done[concurrency:] if r.arrival >= warm]
    return _summarize("closed", measured or done, warm, scheduler.now, scheduler)


def static_batch(timing: TimingModel, kv_capacity_tokens: float, input_len: int, output_len: int, batch: int,
                 max_num_seqs: int = DEFAULT_MAX_NUM_SEQS, budget: int | None = DEFAULT_MAX_BATCHED_TOKENS) -> ServingResult:
    """``batch`` requests at once and nothing after: throughput over the whole run, prefills included."""
    scheduler = Scheduler(timing, kv_capacity_tokens, max(max_num_seqs, batch), budget)
    scheduler.waiting.extend(ScheduledRequest(0.0, input_len, output_len) for _ in range(batch))
    done: list[ScheduledRequest] = []
    while len(done) < batch:
        done += scheduler.step()
    return _summarize("static", done, 0.0, scheduler.now, scheduler)


def open_loop(timing: TimingModel, kv_capacity_tokens: float, lengths: Sequence[tuple[int, int]], rate: float,
              max_num_seqs: int = DEFAULT_MAX_NUM_SEQS, requests: int = 1000, seed: int = 0,
              budget: int | None = DEFAULT_MAX_BATCHED_TOKENS) -> ServingResult:
    """Poisson arrivals at ``rate`` per second, each request's (input, output) lengths drawn from
    ``lengths`` (one pair: every request alike); the first tenth is the warm-up. Saturated when
    the requests still waiting at the last arrival grew with time (arrivals outpace service).
    The same seed at another rate gives the same requests, their arrival times scaled."""
    rng = random.Random(seed)
    arrivals, t = [], 0.0
    for _ in range(requests):
        t += rng.expovariate(rate)
        input_len, output_len = lengths[0] if len(lengths) == 1 else rng.choice(lengths)
        arrivals.append(ScheduledRequest(t, input_len, output_len))
    scheduler = Scheduler(timing, kv_capacity_tokens, max_num_seqs, budget)
    pending = [(r.arrival, index) for index, r in enumerate(arrivals)]
    heapq.heapify(pending)
    done: list[ScheduledRequest] = []
    backlog_half = backlog_end = 0
    while len(done) < requests:
        while pending and pending[0][0] <= scheduler.now:
            scheduler.waiting.append(arrivals[heapq.heappop(pending)[1]])
        if not scheduler.running and not scheduler.waiting and pending:
            scheduler.now = pending[0][0]  # idle until the next arrival
            continue
        done += scheduler.step()
        if not backlog_half and scheduler.now >= arrivals[requests // 2].arrival:
            backlog_half = len(scheduler.waiting) + 1
        if not backlog_end and scheduler.now >= arrivals[-1].arrival:
            backlog_end = len(scheduler.waiting) + 1
    warm = arrivals[requests // 10].arrival
    measured = [r for r in done if r.arrival >= warm]
    last_arrival = arrivals[-1].arrival
    saturated = backlog_end > max(2 * backlog_half, 2 * max_num_seqs // 16 + 2)
    return _summarize("open", measured, warm, min(last_arrival, scheduler.now), scheduler, saturated)


def serve(d: Deployment, input_len: int, output_len: int, *, concurrency: int | None = None, batch: int | None = None,
          rate: float | None = None, max_num_seqs: int = DEFAULT_MAX_NUM_SEQS, requests: int = 1000) -> ServingResult:
    """One scenario on a deployment: exactly one of ``concurrency`` (closed loop), ``batch``
    (static) or ``rate`` (open loop, requests/s), scheduled as its engine profile does."""
    if sum(x is not None for x in (concurrency, batch, rate)) != 1:
        raise ValueError("give exactly one of concurrency, batch or rate")
    timing = RooflineTiming(d)
    capacity = roofline.kv_capacity_tokens(d)
    budget = roofline.engine_profile(d.engine).max_batched_tokens
    if concurrency is not None:
        return closed_loop(timing, capacity, input_len, output_len, concurrency, max_num_seqs, budget=budget)
    if batch is not None:
        return static_batch(timing, capacity, input_len, output_len, batch, max_num_seqs, budget=budget)
    assert rate is not None
    return open_loop(timing, capacity, [(input_len, output_len)], rate, max_num_seqs, requests, budget=budget)
