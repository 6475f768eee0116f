"""API price tables and usage normalization: what a call to a priced API model costs.

Prices are USD per token internally (LiteLLM's unit) and USD per 1M tokens in config (what
price pages show). Usage shapes differ by provider, and a token must never be billed twice:

* OpenAI: ``prompt_tokens`` includes ``prompt_tokens_details.cached_tokens``;
* Anthropic: ``input_tokens`` excludes cache reads (``cache_read_input_tokens``) and cache writes
  (``cache_creation_input_tokens``), which are reported beside it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PER_MILLION = 1_000_000


@dataclass(frozen=True)
class TokenPrices:
    """USD per token; cached input and cache writes fall back to the input price when unset."""

    input: float
    output: float
    cached_input: float | None = None
    cache_write: float | None = None
    as_of: str | None = None
    source: str = "config"

    @classmethod
    def per_million(cls, input: float, output: float, cached_input: float | None = None,
                    cache_write: float | None = None, as_of: str | None = None, source: str = "config") -> TokenPrices:
        def scale(value: float | None) -> float | None:
            return None if value is None else value / PER_MILLION

        return cls(input / PER_MILLION, output / PER_MILLION, scale(cached_input), scale(cache_write), as_of, source)


@dataclass(frozen=True)
class Usage:
    """Token counts with no overlap: every prompt token is in exactly one of the first three."""

    uncached_input: int
    cached_input: int
    cache_write: int
    output: int

    @property
    def prompt_tokens(self) -> int:
        return self.uncached_input + self.cached_input + self.cache_write


def normalize_usage(usage: dict[str, Any] | None) -> Usage:
    """OpenAI- or Anthropic-style usage as non-overlapping counts."""
    if not usage:
        return Usage(0, 0, 0, 0)
    if "input_tokens" in usage and "prompt_tokens" not in usage:
        return Usage(
            uncached_input=_int(usage.get("input_tokens")),
            cached_input=_int(usage.get("cache_read_input_tokens")),
            cache_write=_int(usage.get("cache_creation_input_tokens")),
            output=_int(usage.get("output_tokens")),
        )
    details = usage.get("prompt_tokens_details") or {}
    cached = _int(details.get("cached_tokens")) if isinstance(details, dict) else 0
    prompt = _int(usage.get("prompt_tokens"))
    return Usage(uncached_input=max(prompt - cached, 0), cached_input=min(cached, prompt), cache_write=0,
                 output=_int(usage.get("completion_tokens")))


def _int(value: Any) -> int:
    return int(value) if isinstance(value, (int, float)) and value > 0 else 0


def api_call_cost(prices: TokenPrices, usage: Usage) -> float:
    cached_price = prices.input if prices.cached_input is None else prices.cached_input
    write_price = prices.input if prices.cache_write is None else prices.cache_write
    return (usage.uncached_input * prices.input + usage.cached_input * cached_price
            + usage.cache_write * write_price + usage.output * prices.output)


def load_litellm_prices(path: str | Path) -> dict[str, TokenPrices]:
    """Read LiteLLM's ``model_prices_and_context_window.json`` format from a local file."""
    document = json.loads(Path(path).read_text())
    prices: dict[str, TokenPrices] = {}
    for name, entry in document.items():
        if not isinstance(entry, dict) or name == "sample_spec":
            continue
        input_cost, output_cost = entry.get("input_cost_per_token"), entry.get("output_cost_per_token")
        if not isinstance(input_cost, (int, float)) or not isinstance(output_cost, (int, float)):
            continue
        prices[name] = TokenPrices(
            input=float(input_cost),
            output=float(output_cost),
            cached_input=_float_or_none(entry.get("cache_read_input_token_cost")),
            cache_write=_float_or_none(entry.get("cache_creation_input_token_cost")),
            source=f"litellm:{Path(path).name}",
        )
    return prices


def _float_or_none(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) else None
