"""The API price table that ships: a dated snapshot of public per-token prices.

Without one, every API model is "unpriced" until an operator types prices in by hand. The
snapshot is taken from LiteLLM's community-maintained ``model_prices_and_context_window.json``
(MIT, the copy inside the ``litellm`` wheel; see ``data/api_prices.LICENSE``), cut down to
what pricing a call needs: input, output, cached input and cache-write prices of the chat,
completion, responses and embedding models. It says where it came from and as of when, so a
report can show how old a price is; ``tollgate pricing update --from FILE`` writes a newer one
into the data directory, which then wins over the shipped one.

Units: the snapshot keeps USD per 1M tokens (what price pages show); ``TokenPrices`` is per token.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from .prices import PER_MILLION, TokenPrices

SHIPPED = Path(__file__).parent / "data" / "api_prices.json"
UPDATED_NAME = "api_prices.json"  # in the data directory, written by ``pricing update``
MODES = ("chat", "completion", "responses", "embedding")  # what the gateway forwards and prices by token


@dataclass(frozen=True)
class PriceTable:
    as_of: str
    source: str
    prices: dict[str, TokenPrices]


def snapshot_from_litellm(document: dict[str, Any], as_of: str, source: str) -> dict[str, Any]:
    """LiteLLM's format cut down to the snapshot's: entries with both token prices, in USD per 1M."""
    if not isinstance(document, dict):
        raise ValueError("not a LiteLLM price map (a JSON object of models)")
    models: dict[str, dict[str, Any]] = {}
    for name, entry in sorted(document.items()):
        if name == "sample_spec" or not isinstance(entry, dict) or entry.get("mode") not in MODES:
            continue
        input_cost, output_cost = entry.get("input_cost_per_token"), entry.get("output_cost_per_token")
        if not _is_price(input_cost) or not _is_price(output_cost):
            continue
        models[name] = {
            "provider": entry.get("litellm_provider"),
            "mode": entry["mode"],
            "input": _per_million(input_cost),
            "output": _per_million(output_cost),
            "cached_input": _per_million(entry.get("cache_read_input_token_cost")),
            "cache_write": _per_million(entry.get("cache_creation_input_token_cost")),
        }
    if not models:
        raise ValueError("no model with input and output token prices in it")
    return {"as_of": as_of, "source": source, "unit": "USD per 1M tokens", "models": models}


def parse_snapshot(document: dict[str, Any], origin: str) -> PriceTable:
    try:
        as_of, source, models = document["as_of"], document["source"], document["models"]
        prices = {
            name: TokenPrices.per_million(entry["input"], entry["output"], entry.get("cached_input"),
                                          entry.get("cache_write"), as_of=as_of, source=f"table:{origin}")
            for name, entry in models.items()
        }
    except (KeyError, TypeError, AttributeError) as err:
        raise ValueError(f"not a Tollgate price snapshot: {err!r}") from None
    return PriceTable(as_of, source, prices)


@lru_cache(maxsize=4)
def _read(path: Path, mtime: float) -> PriceTable:
    return parse_snapshot(json.loads(path.read_text()), "shipped" if path == SHIPPED else "updated")


def price_table(data_dir: str | Path | None = None) -> PriceTable:
    """The snapshot in force: the data directory's (``pricing update``), else the shipped one."""
    path = SHIPPED
    if data_dir is not None and (Path(data_dir) / UPDATED_NAME).is_file():
        path = Path(data_dir) / UPDATED_NAME
    return _read(path, path.stat().st_mtime)


def _is_price(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0


def _per_million(value: Any) -> float | None:
    return round(float(value) * PER_MILLION, 9) if _is_price(value) else None
