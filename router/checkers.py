"""Is an answer right? Checkers that compare a model's answer with a reference (pure).

``exact``: equal after case, spacing and surrounding punctuation are normalised; ``prefix``: the
answer starts with the reference, as a whole word (short answers of base models that run on);
``contains``: the reference appears in the answer (normalised); ``number``: the last number in the answer
equals the reference number (GSM8K-style). ``module:function`` names any other checker, called
as ``function(answer, reference) -> bool``.
"""

from __future__ import annotations

import importlib
import re
import string
from collections.abc import Callable

Checker = Callable[[str, str], bool]
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def normalize(text: str) -> str:
    return " ".join(text.lower().split()).strip(string.punctuation + " ")


def exact(answer: str, reference: str) -> bool:
    return normalize(answer) == normalize(reference)


def prefix(answer: str, reference: str) -> bool:
    said, wanted = normalize(answer), normalize(reference)
    return bool(wanted) and said.startswith(wanted) and (len(said) == len(wanted) or not said[len(wanted)].isalnum())


def contains(answer: str, reference: str) -> bool:
    wanted = normalize(reference)
    return bool(wanted) and wanted in normalize(answer)


def _as_number(text: str) -> float | None:
    try:
        return float(text.replace(",", ""))
    except ValueError:
        return None


def number(answer: str, reference: str) -> bool:
    found = _NUMBER.findall(answer)
    expected = _as_number(reference.strip())
    got = _as_number(found[-1]) if found else None
    return got is not None and expected is not None and abs(got - expected) < 1e-6


BUILT_IN: dict[str, Checker] = {"exact": exact, "prefix": prefix, "contains": contains, "number": number}


def load(name: str) -> Checker:
    """A built-in checker by name, or ``module:function``."""
    if name in BUILT_IN:
        return BUILT_IN[name]
    module_name, _, function_name = name.partition(":")
    if not module_name or not function_name:
        raise ValueError(f"unknown checker {name!r}: use {', '.join(BUILT_IN)} or module:function")
    try:
        function = getattr(importlib.import_module(module_name), function_name)
    except (ImportError, AttributeError) as err:
        raise ValueError(f"cannot load checker {name!r}: {err}") from None
    if not callable(function):
        raise ValueError(f"checker {name!r} is not callable")
    return function


def is_right(check: Checker, answer: str, references: list[str]) -> bool:
    """Right if it matches any of the references."""
    return any(check(answer, reference) for reference in references)
