"""A continuous-batching engine in miniature: vLLM's scheduling on a real clock, a prefix cache.

The scheduling is the pricing package's (``pricing.serving.Scheduler``): each step spends a token
budget (``max_num_batched_tokens``), one token for every decoding sequence and the rest on prompt
chunks, so a long prompt is prefilled over several steps while the batch goes on decoding; a
request is admitted while there are slots, budget and KV room for its prompt; KV is taken as
sequences grow, and the newest is preempted (recomputed later) when it runs out. ``pricing
estimate`` runs the same steps on a virtual clock. A step's duration comes from a timing model
(the pricing package's roofline model for the presets), so time to first token grows with
prompt length and queueing, and inter-token time grows with the running batch. ``time_scale``
shrinks all sleeps for tests (0 means no sleeping at all, just yielding to the event loop).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import OrderedDict
from dataclasses import dataclass, field

from pricing.serving import DEFAULT_MAX_BATCHED_TOKENS, ScheduledRequest, Scheduler, TimingModel

from .textgen import Plan, TokenOut

MAX_DEBT_S = 0.05


@dataclass(frozen=True)
class LinearTiming:
    """Explicit linear timing for unit tests; presets use the roofline model (enginesim.presets).

    The base term is the weight read every decode step pays once for the whole batch; the
    per-sequence and per-context terms are each sequence's share of compute and KV reads.
    """

    prefill_tokens_per_s: float = 20_000.0
    step_base_s: float = 0.010
    step_per_seq_s: float = 0.0002
    step_per_context_token_s: float = 2e-8

    def prefill_seconds(self, new_tokens: int, cached_tokens: int) -> float:
        return new_tokens / self.prefill_tokens_per_s

    def prefill_compute_seconds(self, new_tokens: int, cached_tokens: int) -> float:
        return new_tokens / self.prefill_tokens_per_s

    def decode_step_seconds(self, batch: int, mean_context: float) -> float:
        return self.step_base_s + batch * (self.step_per_seq_s + mean_context * self.step_per_context_token_s)


class PrefixCache:
    """Which prompt blocks the engine still holds: chained block hashes in LRU order.

    A block's hash covers all tokens before it, so a hit on block i means the whole prefix up
    to it matches, as in vLLM's automatic prefix caching.
    """

    def __init__(self, block_size: int, capacity_blocks: int) -> None:
        self.block_size = block_size
        self.capacity_blocks = capacity_blocks
        self._blocks: OrderedDict[bytes, None] = OrderedDict()

    def block_hashes(self, tokens: list[int], salt: str = "") -> list[bytes]:
        """As vLLM: a request's ``cache_salt`` goes into its first block's hash, so the same prompt
        under another salt (another tenant) shares no block."""
        hashes, previous = [], salt.encode()
        for start in range(0, len(tokens) - self.block_size + 1, self.block_size):
            block = tokens[start : start + self.block_size]
            previous = hashlib.blake2b(previous + repr(block).encode(), digest_size=16).digest()
            hashes.append(previous)
        return hashes

    def lookup_and_insert(self, tokens: list[int], salt: str = "") -> int:
        """Tokens of the longest cached prefix (the last prompt token is always recomputed)."""
        hashes = self.block_hashes(tokens, salt)
        hit_blocks = 0
        for block_hash in hashes:
            if block_hash not in self._blocks:
                break
            hit_blocks += 1
        for block_hash in hashes:
            self._blocks[block_hash] = None
            self._blocks.move_to_end(block_hash)
        while len(self._blocks) > self.capacity_blocks:
            self._blocks.popitem(last=False)
        return min(hit_blocks * self.block_size, max(len(tokens) - 1, 0))


@dataclass(eq=False)
class Sequence:
    prompt: list[int]
    plan: Plan
    cache_salt: str = ""
    out: asyncio.Queue[TokenOut | None] = field(default_factory=asyncio.Queue)
    cached_tokens: int = 0  # prompt tokens the prefix cache held when it was first admitted
    admitted: bool = False
    aborted: bool = False
    scheduled: ScheduledRequest = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.scheduled = ScheduledRequest(0.0, len(self.prompt), len(self.plan.tokens), owner=self)

    @property
    def emitted(self) -> int:
        return min(self.scheduled.emitted, len(self.plan.tokens))

    @property
    def done(self) -> bool:
        return self.aborted or self.scheduled.finished >= 0


class Engine:
    def __init__(
        self,
        timing: TimingModel,
        *,
        max_num_seqs: int = 64,
        max_num_batched_tokens: int = DEFAULT_MAX_BATCHED_TOKENS,
        kv_capacity_tokens: int = 200_000,
        block_size: int = 16,
        time_scale: float = 1.0,
    ) -> None:
        self.kv_capacity_tokens = kv_capacity_tokens
        self.time_scale = time_scale
        self._step_due = 0.0  # when the current step ends, on the loop's clock (0: idle)
        self.prefix_cache = PrefixCache(block_size, kv_capacity_tokens // block_size)
        self.scheduler = Scheduler(timing, kv_capacity_tokens, max_num_seqs, max_num_batched_tokens,
                                   on_admit=self._admitted)
        self.prompt_tokens_total = 0
        self.generation_tokens_total = 0
        self.prefix_queries_total = 0
        self.prefix_hits_total = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def submit(self, prompt: list[int], plan: Plan, cache_salt: str = "") -> Sequence:
        sequence = Sequence(prompt=prompt, plan=plan, cache_salt=cache_salt)
        self.scheduler.waiting.append(sequence.scheduled)
        self._wake.set()
        return sequence

    def abort(self, sequence: Sequence) -> None:
        """The client went away: its slot and KV are free for the next step."""
        sequence.aborted = True
        self.scheduler.drop(sequence.scheduled)

    @property
    def running(self) -> list[Sequence]:
        return [r.owner for r in self.scheduler.running]

    @property
    def waiting(self) -> list[Sequence]:
        return [r.owner for r in self.scheduler.waiting]

    @property
    def preemptions(self) -> int:
        """Sequences put back to wait (their KV freed, recomputed when admitted again), so far."""
        return self.scheduler.preemptions

    @property
    def kv_usage(self) -> float:
        return min(self.scheduler.used / self.kv_capacity_tokens, 1.0)

    def _admitted(self, request: ScheduledRequest) -> int:
        """Prompt tokens the prefix cache already holds (the last one is always computed again)."""
        sequence: Sequence = request.owner
        cached = self.prefix_cache.lookup_and_insert(sequence.prompt, sequence.cache_salt)
        self.prefix_queries_total += len(sequence.prompt)
        self.prefix_hits_total += cached
        if not sequence.admitted:  # counted once, not again when a preempted sequence comes back
            sequence.admitted = True
            sequence.cached_tokens = cached
            self.prompt_tokens_total += len(sequence.prompt)
        return cached

    async def _run(self) -> None:
        scheduler = self.scheduler
        while True:
            if not scheduler.running and not scheduler.waiting:
                self._wake.clear()
                await self._wake.wait()
                self._step_due = 0.0
                continue
            plan = scheduler.plan_step()
            await self._sleep(plan.seconds)
            emitted, finished = scheduler.finish_step(plan)
            for request in emitted:
                sequence: Sequence = request.owner
                if request.emitted <= len(sequence.plan.tokens):  # a plan of no tokens still takes a step
                    sequence.out.put_nowait(sequence.plan.tokens[request.emitted - 1])
                    self.generation_tokens_total += 1
            for request in finished:
                request.owner.out.put_nowait(None)

    async def _sleep(self, seconds: float) -> None:
        """Sleep until the step's due time: steps follow each other on the model's clock, so the
        event loop's lateness (a millisecond a step on a busy machine) does not add up over a
        stream. Lateness beyond MAX_DEBT_S is forgiven rather than caught up in a burst."""
        if self.time_scale <= 0:
            await asyncio.sleep(0)
            return
        now = asyncio.get_running_loop().time()
        self._step_due = max(self._step_due, now - MAX_DEBT_S) + seconds * self.time_scale
        await asyncio.sleep(max(self._step_due - now, 0.0))
