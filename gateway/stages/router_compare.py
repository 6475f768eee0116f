"""Serving router against its shadow, on live traffic: pure arithmetic over ledger records and
cascade labels (the admin route reads them; ``tollgate router compare`` prints the result).

* **Agreement**: the share of shadowed calls where both routers chose the same model.
* **Flagship share**: the share each router sends to the flagship.
* **Cost**: what the served calls cost, and what they would have cost had the shadow decided.
  Where it agrees, the call's own cost. Where it would have sent a cheap call to the flagship, the
  record's flagship counterfactual (what the flagship would have charged for the same tokens).
  Where it would have kept a flagship call on the cheap model, the call's tokens at the cheap
  model's mean cost per token over the compared calls it answered without escalating (counted as
  ``estimated``: nothing measured the cheap model on that prompt).
* **APGR and CPT(50%)** on the cascade's labels (was the cheap answer kept, or escalated?): both
  routers score the same labelled prompts, so the comparison is paired.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from router.data import Example
from router.evaluate import evaluate
from router.model import RouterModel


def shadowed(records: Iterable[dict[str, Any]], shadow_version: str) -> list[dict[str, Any]]:
    """Answered, routed calls the shadow version scored (cache hits ran no model: left out)."""
    return [r for r in records if r.get("shadow_version") == shadow_version and r.get("status") == 200
            and r.get("cache", "none") == "none" and r.get("route") in ("router", "cascade")]


def _tokens(record: dict[str, Any]) -> int:
    return int(record.get("prompt_tokens") or 0) + int(record.get("completion_tokens") or 0)


def projected(records: list[dict[str, Any]], cheap: str, flagship: str) -> dict[str, Any]:
    """Agreement, flagship shares and costs of serving and shadow over the same calls."""
    if not records:
        return {"calls": 0}
    kept_cheap = [r for r in records if r.get("routed_model") == cheap and not r.get("escalated")]
    cheap_tokens = sum(_tokens(r) for r in kept_cheap)
    cheap_per_token = sum(float(r.get("cost_usd") or 0) for r in kept_cheap) / cheap_tokens if cheap_tokens else None
    served_cost = shadow_cost = 0.0
    estimated = unpriced = agree = serving_flagship = shadow_flagship = 0
    for record in records:
        served, candidate = record.get("routed_model"), record.get("shadow_model")
        cost = float(record.get("cost_usd") or 0)
        served_cost += cost
        serving_flagship += served == flagship
        shadow_flagship += candidate == flagship
        if candidate == served:
            agree += 1
            shadow_cost += cost
        elif candidate == flagship and record.get("flagship_cost_usd") is not None:
            shadow_cost += float(record["flagship_cost_usd"])
        elif candidate == cheap and cheap_per_token is not None:
            estimated += 1
            shadow_cost += cheap_per_token * _tokens(record)
        else:
            unpriced += 1
            shadow_cost += cost
    calls = len(records)
    return {
        "calls": calls,
        "agreement": agree / calls,
        "serving": {"flagship_share": serving_flagship / calls, "cost_usd": served_cost},
        "shadow": {"flagship_share": shadow_flagship / calls, "cost_usd": shadow_cost,
                   "estimated_calls": estimated, "unpriced_calls": unpriced},
    }


def on_labels(labels: list[dict[str, Any]], serving: RouterModel, shadow: RouterModel) -> dict[str, Any]:
    """APGR and CPT(50%) of both routers on the same cascade labels (None without both outcomes)."""
    examples = [Example(str(label["prompt"]), float(label["weak"]), float(label["strong"]))
                for label in labels if isinstance(label.get("prompt"), str)]
    escalated = sum(e.strong_wins for e in examples)
    result: dict[str, Any] = {"labels": len(examples), "escalated": escalated}
    if not 0 < escalated < len(examples):
        return result | {"serving": None, "shadow": None}
    for name, model in (("serving", serving), ("shadow", shadow)):
        scored = evaluate([model.score(e.text) for e in examples], examples)
        result[name] = {"apgr": scored.apgr, "cpt50": scored.cpt50}
    return result
