"""The default router's training data, built by the project itself (``tollgate router build-dataset``).

There is no offline corpus of real prompts with the per-prompt correctness of a small and a large
model, so this builds one from what is published: for each kind of request (a benchmark family)
the accuracy of Llama 3.1 8B Instruct (the weak model) and Llama 3.1 70B Instruct (the strong one)
from Meta's model card (https://github.com/meta-llama/llama-models/blob/main/models/llama3_1/MODEL_CARD.md,
"Instruction tuned models" table; TriviaQA from its pre-trained table). Prompts are generated from
templates; within a family, prompts with more steps or constraints are made harder; labels are drawn
so that each family's accuracies match the card, with a little independent noise so that the weak
model sometimes wins. Deterministic for a given seed.

What a router trained on it knows: which *kinds* of requests a small model tends to fail
(multi-step maths, competition maths, graduate science, tool calls, hard exams), not anything about
a particular deployment's traffic. Train on your own labelled prompts, or on the cascade's
escalations (``--from-ledger``), for that.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

NOISE = 0.08  # share of labels redrawn independently of difficulty

Generator = Callable[[random.Random], tuple[str, float]]  # a prompt and its difficulty in [0, 1]

_NAMES = ["Ana", "Ben", "Chen", "Dara", "Eli", "Fatima", "Goran", "Hana", "Ivo", "Jun", "Kofi", "Lea"]
_ITEMS = ["apples", "books", "tickets", "marbles", "stamps", "cookies", "pencils", "coins", "plants", "shirts"]
_TOPICS = ["photosynthesis", "the French revolution", "inflation", "plate tectonics", "vaccines", "black holes",
           "supply chains", "the Roman empire", "neural networks", "climate change", "jazz", "the immune system"]
_SUBJECTS = ["biology", "economics", "law", "philosophy", "chemistry", "history", "medicine", "computer science",
             "physics", "psychology", "statistics", "engineering"]
_LANGUAGES = ["French", "German", "Spanish", "Italian", "Portuguese", "Hindi", "Thai"]
_FUNCTIONS = ["parses a CSV line with quoted fields", "returns the n-th Fibonacci number", "merges two sorted lists",
              "checks whether a string is a palindrome", "finds the longest common subsequence of two strings",
              "computes the shortest path in a weighted graph", "validates an IPv4 address",
              "serializes a binary tree to a string and back", "implements an LRU cache", "counts word frequencies"]
_LANGS_CODE = ["Python", "JavaScript", "Go", "Rust", "Java", "C++", "TypeScript"]


def _chat(rng: random.Random) -> tuple[str, float]:
    return rng.choice(["hi there!", "thanks, that helped", "good morning, how are you?", f"tell me a joke about {rng.choice(_ITEMS)}",
                       f"say hello to {rng.choice(_NAMES)}", "what can you do?", "ok, bye"]), rng.random() * 0.3


def _translate(rng: random.Random) -> tuple[str, float]:
    word = rng.choice(_ITEMS + ["house", "friend", "water", "morning", "library"])
    return f"translate the word '{word}' into {rng.choice(_LANGUAGES)}", rng.random() * 0.4


def _trivia(rng: random.Random) -> tuple[str, float]:
    return rng.choice([f"who first described {rng.choice(_TOPICS)}?", f"in which year did {rng.choice(_TOPICS)} become widely known?",
                       f"what is the capital of the country where {rng.choice(_NAMES)} was born?",
                       f"which scientist is best known for work on {rng.choice(_TOPICS)}?"]), rng.random()


def _instructions(rng: random.Random) -> tuple[str, float]:
    constraints = rng.sample(["use exactly three paragraphs", "do not use the letter e", "answer in JSON",
                              "write at least 200 words", "end with a question", "use only lowercase letters",
                              "include the keyword 'ledger' twice", "no more than 50 words", "use bullet points only"],
                             rng.randint(1, 4))
    return f"write about {rng.choice(_TOPICS)}. You must {'; '.join(constraints)}.", (len(constraints) - 1) / 3


def _gsm(rng: random.Random) -> tuple[str, float]:
    steps = rng.randint(2, 8)
    name, item = rng.choice(_NAMES), rng.choice(_ITEMS)
    parts = [f"{name} has {rng.randint(3, 90)} {item}."]
    for _ in range(steps - 1):
        parts.append(rng.choice([f"She buys {rng.randint(2, 40)} more.", f"She gives away {rng.randint(1, 9)} to each of {rng.randint(2, 6)} friends.",
                                 "Then the number doubles.", f"She sells a third of them for ${rng.randint(1, 9)} each.",
                                 f"A box holds {rng.randint(4, 12)} {item}."]))
    return " ".join(parts) + f" How many {item} does {name} have now? Think step by step.", (steps - 2) / 6


def _competition_math(rng: random.Random) -> tuple[str, float]:
    a, b = rng.randint(2, 19), rng.randint(2, 29)
    prompt = rng.choice([f"prove that the sum of {a} consecutive odd numbers is a perfect square",
                         f"solve for x: x^{a % 5 + 2} - {b}x + {a} = 0, giving all real roots",
                         f"evaluate the integral of x^{a % 4 + 1} log(x) from 1 to {b}",
                         f"how many positive integers below {a * 100} are divisible by {a % 7 + 2} but not by {b % 5 + 3}?",
                         f"find the remainder when {a}^{b * 10} is divided by {b + 7}",
                         f"a triangle has sides {a}, {b} and {a + b - 1}. Find the radius of its inscribed circle."])
    return prompt, rng.random()


def _code(rng: random.Random) -> tuple[str, float]:
    extras = rng.sample(["handle empty input", "run in O(n log n)", "include unit tests", "add type hints",
                         "avoid recursion", "be thread-safe"], rng.randint(0, 3))
    suffix = f" It must {', '.join(extras)}." if extras else ""
    return f"write a {rng.choice(_LANGS_CODE)} function that {rng.choice(_FUNCTIONS)}.{suffix}", len(extras) / 3


def _gpqa(rng: random.Random) -> tuple[str, float]:
    return rng.choice([f"In a spin-1/2 system with Hamiltonian H = {rng.randint(2, 9)} sigma_z, what is the expectation of sigma_x after time t? Choose A-D.",
                       f"Which product forms when the given diene undergoes a [4+2] cycloaddition with maleic anhydride at {rng.randint(20, 120)} C? Explain the stereochemistry.",
                       f"A population with allele frequency 0.{rng.randint(10, 90)} is under selection coefficient 0.0{rng.randint(1, 9)}; estimate the frequency after 50 generations.",
                       f"What is the ground-state term symbol of a d{rng.randint(2, 8)} ion in an octahedral field?"]), rng.random()


def _mmlu(rng: random.Random, hard: bool) -> tuple[str, float]:
    options = " ".join(f"({letter}) option {letter.lower()}" for letter in "ABCDEFGHIJ"[: 10 if hard else 4])
    return (f"The following is a multiple choice question about {rng.choice(_SUBJECTS)}. "
            f"Which statement about {rng.choice(_TOPICS)} is correct? {options} Answer with the letter."), rng.random()


def _arc(rng: random.Random) -> tuple[str, float]:
    return (f"Which of these best explains why {rng.choice(_ITEMS)} left in the sun get warmer? "
            "(A) they absorb light (B) they reflect sound (C) they lose mass (D) they attract water"), rng.random()


def _tools(rng: random.Random, nested: bool) -> tuple[str, float]:
    if nested:
        return (f"Using the tools search_flights, book_hotel and convert_currency, plan a trip for {rng.choice(_NAMES)} to "
                f"{rng.choice(['Lisbon', 'Osaka', 'Lima', 'Nairobi'])}: first find the cheapest flight, then a hotel under "
                f"{rng.randint(80, 200)} EUR converted to USD, and call them in the right order."), rng.random()
    return f"call the get_weather tool for {rng.choice(['Paris', 'Oslo', 'Cairo', 'Austin'])} and report the temperature", rng.random()


def _mgsm(rng: random.Random) -> tuple[str, float]:
    language = rng.choice(_LANGUAGES)
    prompt, difficulty = _gsm(rng)
    return f"Answer in {language}: {prompt}", difficulty


@dataclass(frozen=True)
class Family:
    name: str
    source: str  # the model-card row the accuracies come from
    weak: float  # Llama 3.1 8B Instruct accuracy
    strong: float  # Llama 3.1 70B Instruct accuracy
    share: float  # share of the dataset
    make: Generator


FAMILIES = (
    Family("chat", "none: both models answer small talk", 0.98, 0.99, 0.12, _chat),
    Family("translate_word", "none: single-word translation", 0.95, 0.97, 0.06, _translate),
    Family("trivia", "TriviaQA-Wiki (pre-trained table)", 0.776, 0.898, 0.08, _trivia),
    Family("instructions", "IFEval", 0.804, 0.875, 0.10, _instructions),
    Family("grade_school_math", "GSM-8K (CoT)", 0.845, 0.951, 0.09, _gsm),
    Family("competition_math", "MATH (CoT)", 0.519, 0.680, 0.07, _competition_math),
    Family("code", "MBPP ++ base version", 0.728, 0.860, 0.10, _code),
    Family("graduate_science", "GPQA", 0.304, 0.467, 0.05, _gpqa),
    Family("exam", "MMLU (CoT)", 0.730, 0.860, 0.08, lambda rng: _mmlu(rng, hard=False)),
    Family("hard_exam", "MMLU-Pro (CoT)", 0.483, 0.664, 0.05, lambda rng: _mmlu(rng, hard=True)),
    Family("science_reasoning", "ARC-C", 0.834, 0.948, 0.05, _arc),
    Family("tool_call", "BFCL", 0.761, 0.848, 0.06, lambda rng: _tools(rng, nested=False)),
    Family("nested_tools", "Nexus (0-shot)", 0.385, 0.567, 0.04, lambda rng: _tools(rng, nested=True)),
    Family("multilingual_math", "Multilingual MGSM (CoT)", 0.689, 0.869, 0.05, _mgsm),
)


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)] if q < 1 else float("inf")


def build(size: int = 6000, seed: int = 7) -> list[dict]:
    """Records in the per-prompt score format (``prompt``, ``weak``, ``strong``, ``domain``, ``id``)."""
    rng = random.Random(seed)
    records = []
    for family in FAMILIES:
        count = max(int(round(size * family.share)), 10)
        items = [family.make(rng) for _ in range(count)]
        # Latent hardness: half the prompt's visible difficulty, half chance.
        hardness = [0.5 * difficulty + 0.5 * rng.random() for _, difficulty in items]
        weak_cut, strong_cut = _quantile(hardness, family.weak), _quantile(hardness, family.strong)
        for index, ((prompt, _), h) in enumerate(zip(items, hardness, strict=True)):
            weak, strong = float(h < weak_cut), float(h < strong_cut)
            if rng.random() < NOISE:
                weak = float(rng.random() < family.weak)
            if rng.random() < NOISE:
                strong = float(rng.random() < family.strong)
            records.append({"prompt": prompt, "weak": weak, "strong": strong, "domain": family.name,
                            "id": f"{family.name}-{index}"})
    rng.shuffle(records)
    return records


ARENA_GRADE_MAX = 10.0


def graded_records(path: str | Path) -> list[dict]:
    """Real prompts graded 1 to 10 (Arena-Hard's arena-bench-v1 file of ../shared/router-data), with the
    grades scaled to 0.1-1.0 so that quality curves over them and the 0/1 templated data share one
    scale (who wins is unchanged). The domain is "arena" where the file has none."""
    records = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.strip():
            record = json.loads(line)
            records.append({**record, "weak": record["weak"] / ARENA_GRADE_MAX, "strong": record["strong"] / ARENA_GRADE_MAX,
                            "domain": record.get("domain") or "arena"})
    return records


def write(path: str | Path, size: int = 6000, seed: int = 7, graded: str | Path | None = None) -> int:
    """The templated dataset, then (``graded``) a real graded file's records, as JSON Lines."""
    records = build(size, seed) + (graded_records(graded) if graded else [])
    Path(path).write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in records))
    return len(records)
