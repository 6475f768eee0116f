"""How long the router's decision takes on the request path, by prompt size (not a test).

Times ``gateway.stages.router.Router.route`` (prompt extraction, featurization with word vectors, the
dot product and the threshold rule) on chat bodies from 100 characters to 200 KB, on one pinned
core, and reports p50 and p99; then the same with a shadow router deployed (two scores per call).
The size series repeats a few plain words; at 2,000 characters it also times prompts that look like
real ones (prose with punctuation and numbers, few-shot blocks, code, text that is not ASCII), whose
cost per character is higher, and the real prompts of ``../shared/router-data`` of about that size
when the folder is there (read from it, never stored).
The garbage collector is set as in every gateway worker (``tune_garbage_collector``); ``--default-gc``
times it with Python's defaults instead. Target (issues #4, #16): p99 at most 200 us. Writes a table
to docs/router.md.

    python bench/router_decision.py [--iterations 3000] [--no-write] [--default-gc] [--data FOLDER]
                                    [--window HEAD TAIL]
"""

from __future__ import annotations

import argparse
import inspect
import itertools
import json
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.doc_sections import write_section  # noqa: E402
from bench.router_real_data import DEFAULT_DIR  # noqa: E402
from bench.timing import interleaved_percentiles_us  # noqa: E402

SIZES = (100, 330, 2_000, 20_000, 200_000)
REAL_CHARS = (1_500, 2_600)  # real prompts of about 2,000 characters
_WORDS = "explain how the cache handles a prefix when the batch grows and why the cost per token falls".split()
_ACCENTED = "café naïve größe über façade señor 東京 データ значение ελληνικά crème brûlée".split()


def _prompt(chars: int, rng: random.Random) -> str:
    text: list[str] = []
    while sum(len(w) + 1 for w in text) < chars:
        text.append(rng.choice(_WORDS))
    return " ".join(text)[:chars] + "?"


def _sentences(chars: int, rng: random.Random, words: list[str]) -> str:
    """Sentences with commas, numbers (some with decimals or thousands) and the odd parenthesis."""
    out: list[str] = []
    while sum(map(len, out)) < chars:
        sentence = [rng.choice(words) for _ in range(rng.randint(6, 16))]
        for _ in range(rng.randint(0, 3)):
            sentence.insert(rng.randrange(len(sentence)), rng.choice(("12", "3.5", "1,200", "40%", "(see 2)", "-7")))
        sentence[rng.randrange(len(sentence))] += ","
        out.append(" ".join(sentence).capitalize() + rng.choice((". ", "? ", ".\n", "! ")))
    return "".join(out)[:chars]


def _few_shot(chars: int, rng: random.Random) -> str:
    """Worked examples in blocks separated by blank lines, then the question (as benchmarks ask)."""
    blocks: list[str] = []
    while sum(map(len, blocks)) < chars - 200:
        a, b = rng.randint(2, 90), rng.randint(2, 90)
        blocks.append(f"Question: {_sentences(120, rng, _WORDS)} If {a} + {b} = x, what is x?\n"
                      f"A) {a + b - 1}\nB) {a + b}\nC) {a * b}\nD) {a - b}\nAnswer: B")
    blocks.append(f"Question: {_sentences(150, rng, _WORDS)} What is 17 * 3?\nA) 41\nB) 51\nC) 61\nD) 71\nAnswer:")
    return "\n\n".join(blocks)[-chars:]


def _code(chars: int) -> str:
    import textwrap

    return "Why does this fail on empty input? Fix it.\n\n```python\n" + inspect.getsource(textwrap)[4000:4000 + chars - 60] + "\n```"


def realistic_prompts(rng: random.Random) -> dict[str, list[str]]:
    """Prompts of about 2,000 characters that look like real ones, by kind."""
    return {
        "prose": [_sentences(2_000, rng, _WORDS) for _ in range(20)],
        "few-shot": [_few_shot(2_000, rng) for _ in range(20)],
        "code": [_code(2_000)],
        "not ASCII": [_sentences(2_000, rng, _WORDS + _ACCENTED) for _ in range(20)],
    }


def real_prompts(folder: Path) -> list[str]:
    """The shared real prompts of about 2,000 characters (none if the folder is absent)."""
    prompts: dict[str, None] = {}  # the RouterBench files share their prompts: each once
    for path in sorted(folder.glob("*.jsonl")):
        for line in path.read_text().splitlines():
            prompt = json.loads(line)["prompt"]
            if REAL_CHARS[0] <= len(prompt) <= REAL_CHARS[1]:
                prompts[prompt] = None
    return list(prompts)


def routers(tuned_gc: bool = True, window: tuple[int, int] | None = None) -> tuple[Any, Any]:
    """A gateway's router with a word-vector artifact (the slower kind), and the same with a shadow.
    ``window``: the characters read of a long prompt's start and end (default: as trained now)."""
    from dataclasses import replace

    from gateway.config import parse_settings
    from gateway.stages.router import Router
    from gateway.stages.router_deployments import Deployed
    from gateway.upstream.pool import UpstreamPool
    from router.features import RouterFeatures
    from router.train import fit
    from tests.support.router_data import synthetic_examples
    from wire.features import FeatureSettings

    with tempfile.TemporaryDirectory() as tmp:
        artifact = Path(tmp) / "router.json"
        features = None
        if window is not None:
            features = RouterFeatures(FeatureSettings(head_chars=window[0], tail_chars=window[1]), embedding_scale=1.0)
        fit(synthetic_examples(2000), features, regularization=1.0, embedding_scale=1.0).save(artifact)
        settings = parse_settings({
            "backends": [{"name": "b", "urls": ["http://127.0.0.1:9/v1"]}],
            "models": [{"name": "cheap", "targets": [{"backend": "b"}]}, {"name": "flagship", "targets": [{"backend": "b"}]}],
            "router": {"artifact": str(artifact), "cheap": "cheap", "flagship": "flagship"},
        })
        router = Router(UpstreamPool(settings), settings.router, redis=None)  # type: ignore[arg-type]
        shadowed = Router(UpstreamPool(settings), settings.router, redis=None)  # type: ignore[arg-type]
    assert router.configured is not None and router.configured.model.features.embedding_scale
    if tuned_gc:
        from gateway.http.app import tune_garbage_collector

        tune_garbage_collector()  # as every worker does once it has started (young collections rarer)
    shadowed.deployments = replace(shadowed.deployments, shadow=Deployed("shadow", router.configured.model))
    return router, shadowed


def _decision(router: Any, prompts: list[str]) -> Callable[[], object]:
    """One routing decision per call, going round the prompts."""
    bodies = itertools.cycle([{"model": "auto", "messages": [{"role": "system", "content": "You are helpful."},
                                                             {"role": "user", "content": prompt}]} for prompt in prompts])
    return lambda: router.route("auto", next(bodies), "tenant", True)


def _busy(rounds: int) -> int:
    total = 0
    for i in range(rounds):
        total += i * i
    return total


CONTROL_ROUNDS = 4_500  # about the plain 2,000-character decision's time here (~190 us when the machine is quiet)


def _control() -> Callable[[], object]:
    """A fixed pure-Python loop: the same work every time, so whatever its p99 adds to its p50 is the
    machine's (interrupts, the hypervisor), not the code's. Timed in the same turns as the decisions,
    it says how far their p99 can be read on this machine; and as its work never changes, a
    decision's p50 over the loop's compares runs made while the machine ran at other speeds."""
    return lambda: _busy(CONTROL_ROUNDS)


def measure(router: Any, shadowed: Any, iterations: int, folder: Path) -> Measured:
    """Every row timed in turns with the others (bench/timing.py says why)."""
    rng = random.Random(0)
    calls: dict[str, Callable[[], object]] = {}
    for size in SIZES:
        prompt = [_prompt(size, rng)]
        calls[f"size {size}"] = _decision(router, prompt)
        calls[f"shadow {size}"] = _decision(shadowed, prompt)
    kinds = realistic_prompts(rng)
    real = real_prompts(folder)
    if real:
        kinds[f"real ({folder.name}, {REAL_CHARS[0]:,}-{REAL_CHARS[1]:,} chars)"] = real
    for kind, prompts in kinds.items():
        calls[kind] = _decision(router, prompts)
    calls["control"] = _control()
    timed = interleaved_percentiles_us(calls, iterations)
    sizes = [(size, *timed[f"size {size}"], *timed[f"shadow {size}"]) for size in SIZES]
    return Measured(sizes, [(kind, len(prompts), *timed[kind]) for kind, prompts in kinds.items()], timed["control"])


@dataclass(frozen=True)
class Measured:
    sizes: list[tuple[int, float, float, float, float]]  # size, p50, p99, with a shadow: p50, p99
    kinds: list[tuple[str, int, float, float]]  # kind, prompts, p50, p99
    control: tuple[float, float]


def table(rows: list[tuple[int, float, float, float, float]]) -> str:
    lines = ["| prompt size (chars) | p50 us | p99 us | with a shadow: p50 us | p99 us |", "|---:|---:|---:|---:|---:|"]
    lines += [f"| {size:,} | {p50:.0f} | {p99:.0f} | {both50:.0f} | {both99:.0f} |" for size, p50, p99, both50, both99 in rows]
    return "\n".join(lines)


def kinds_table(rows: list[tuple[str, int, float, float]]) -> str:
    lines = ["| about 2,000 characters of | prompts | p50 us | p99 us |", "|---|---:|---:|---:|"]
    lines += [f"| {kind} | {count:,} | {p50:.0f} | {p99:.0f} |" for kind, count, p50, p99 in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=3000)
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--data", type=Path, default=DEFAULT_DIR,
                        help="real prompts to time as well, when the folder is there (default: ../shared/router-data)")
    parser.add_argument("--window", type=int, nargs=2, metavar=("HEAD", "TAIL"),
                        help="Characters the router reads of a long prompt's start and end (default: as trained now).")
    parser.add_argument("--default-gc", action="store_true",
                        help="Python's default collector settings instead of the gateway workers' (gateway.http.app).")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {0})
    router, shadowed = routers(tuned_gc=not args.default_gc, window=args.window)
    measured = measure(router, shadowed, args.iterations, args.data)
    decision50, decision99 = next((p50, p99) for size, p50, p99, _, _ in measured.sizes if size == 2_000)
    busy50, busy99 = measured.control
    result = (f"{table(measured.sizes)}\n\n{kinds_table(measured.kinds)}\n\n"
              f"Every row, and the control, timed in turns (20 blocks each). Control: a fixed pure-Python loop "
              f"({CONTROL_ROUNDS:,} rounds) has a p50 of {busy50:.0f} us and a p99 of {busy99:.0f} us; what its p99 adds to "
              f"its p50 ({busy99 - busy50:.0f} us) is this machine's, not the code's. The plain 2,000-character decision: "
              f"{decision50:.0f} / {decision99:.0f} us, p50 {decision50 / busy50:.2f} x the loop's; "
              + ", ".join(f"{kind.split(' (')[0]} {p50 / busy50:.2f} x" for kind, _, p50, _ in measured.kinds) + ".")
    print(result)
    if not args.no_write:
        write_section("router.md", "decision", f"Measured {time.strftime('%Y-%m-%d')} on one pinned core.\n\n{result}",
                      "\n## Decision time on the request path\n\n`python bench/router_decision.py`: the whole decision "
                      "(prompt extraction, features, score, threshold) by prompt size. Target: p99 at most 200 us.\n\n")


if __name__ == "__main__":
    main()
