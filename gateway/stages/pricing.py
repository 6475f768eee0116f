"""Price: what a call cost, from the ``pricing`` package's price tables and roofline model, and
what the flagship alone would have cost for the same answer.

The pricer for each (backend, upstream model) is derived from the config once. A self-hosted call
is priced at its own operating point: the mean batch it ran in on its replica over its own time
there (``upstream/load.py``), and its own context (each call pays for reading its own KV cache).
The flagship counterfactual is priced by the same rule at the flagship's mean batch while busy
over the last ``pricing.load_window_s``; while the flagship has been idle for the whole window,
at the batch the call itself ran at (the same traffic would have run there). Idle time is not in
any price: it is reported as the deployment's idle capacity.

Self-hosted backends with a ``deployment`` are priced by the roofline model; API backends by
their ``prices``, the top-level ``pricing.prices``, imported LiteLLM price files, or the shipped
price table (``pricing/api_table.py``), the first that names the upstream model. A call no
table covers is recorded at $0 with cost source ``unpriced``, never silently guessed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pricing import catalog
from pricing.api_table import price_table
from pricing.call_cost import ApiPricing, OperatingPoint, Pricer, SelfHostedPricing
from pricing.prices import TokenPrices, Usage, load_litellm_prices, normalize_usage
from pricing.roofline import Deployment

from ..config import BackendConfig, ConfigError, PriceConfig, Settings
from ..upstream.forwarder import Served
from ..upstream.load import average_batch

BatchOf = Callable[[str, float], float | None]  # (backend, window_s) -> its mean batch while busy

ENGINE_PROFILE = {"vllm": "vllm", "sglang": "sglang", "tgi": "tgi", "llamacpp": "llamacpp"}


@dataclass(frozen=True)
class Price:
    cost_usd: float
    flagship_cost_usd: float | None
    source: str  # roofline, api or unpriced
    parts: tuple[float, ...] = ()  # each upstream call's own cost, when there were several


def _token_prices(config: PriceConfig, source: str) -> TokenPrices:
    return TokenPrices.per_million(config.input, config.output, config.cached_input, config.cache_write, config.as_of, source)


class Pricing:
    """Everything that can be derived from the config is derived once, here; ``price`` only looks up."""

    def __init__(self, settings: Settings, batch_of: BatchOf = lambda backend, window_s: None) -> None:
        self._batch_of = batch_of  # a backend's mean batch while busy: the flagship counterfactual's
        self._window_s = settings.pricing.load_window_s
        self._gpus = {e["id"]: catalog.gpu_from_entry(e) for e in settings.pricing.gpus}
        self._models = {e["id"]: catalog.model_from_entry(e) for e in settings.pricing.models}
        self._api_prices: dict[str, ApiPricing] = {}
        if settings.pricing.price_table:  # the shipped snapshot, or the data directory's newer one
            table = price_table(settings.data_dir)
            self._api_prices.update({name: ApiPricing(p) for name, p in table.prices.items()})
        for path in settings.pricing.litellm_price_files:
            try:
                self._api_prices.update({name: ApiPricing(p) for name, p in load_litellm_prices(path).items()})
            except (OSError, ValueError) as err:
                raise ConfigError(f"cannot read LiteLLM price file {path}: {err}") from None
        self._api_prices.update({name: ApiPricing(_token_prices(p, "config")) for name, p in settings.pricing.prices.items()})
        self._backend_prices = {
            b.name: {model: ApiPricing(_token_prices(p, f"backend:{b.name}")) for model, p in b.prices.items()}
            for b in settings.backends
        }
        self._self_hosted = {b.name: self._self_hosted_pricing(b) for b in settings.backends if b.deployment}
        self._fallback_points = {
            b.name: OperatingPoint(b.deployment.running, b.deployment.mean_context) for b in settings.backends if b.deployment
        }
        self._flagship_target = self._find_flagship(settings)

    def _self_hosted_pricing(self, backend: BackendConfig) -> SelfHostedPricing:
        spec = backend.deployment
        assert spec is not None, "only backends with a deployment are priced by the roofline model"
        try:
            gpu = catalog.gpu(spec.gpu, self._gpus)
            model = catalog.model(spec.model, self._models)
        except catalog.CatalogError as err:
            raise ConfigError(f"backend {backend.name}: {err}") from None
        kv = spec.kv_precision or ("bf16" if spec.precision in ("int4", "fp4") else spec.precision)
        deployment = Deployment(model, gpu, spec.gpus, spec.precision, kv, engine=ENGINE_PROFILE.get(backend.kind, "vllm"))
        try:
            deployment = deployment.with_efficiency(**spec.efficiency) if spec.efficiency else deployment
        except TypeError as err:
            raise ConfigError(f"backend {backend.name}: deployment.efficiency: {err}") from None
        price = gpu.usd_per_hour if spec.usd_per_gpu_hour is None else spec.usd_per_gpu_hour
        return SelfHostedPricing(deployment, price)

    @staticmethod
    def _find_flagship(settings: Settings) -> tuple[str, str] | None:
        name = settings.pricing.flagship or next((m.name for m in settings.models if m.tier == "flagship"), None)
        model = next((m for m in settings.models if m.name == name), None)
        if model is None:
            return None
        target = model.targets[0]
        return target.backend, target.model or model.name

    @property
    def flagship_backend(self) -> str | None:
        return self._flagship_target[0] if self._flagship_target else None

    def unpriced_targets(self, settings: Settings) -> list[str]:
        """Every ``model -> backend/upstream model`` no price table or deployment covers."""
        return [f"{model.name} -> {target.backend}/{target.model or model.name}"
                for model in settings.models for target in model.targets
                if self.pricer(target.backend, target.model or model.name) is None]

    def usd_per_replica_hour(self, backend: str) -> float | None:
        """What one replica of a self-hosted backend costs per hour, busy or not (None: not self-hosted)."""
        pricing = self._self_hosted.get(backend)
        return pricing.usd_per_gpu_hour * pricing.deployment.gpus if pricing else None

    def pricer(self, backend: str, upstream_model: str) -> Pricer | None:
        if backend in self._self_hosted:
            return self._self_hosted[backend]
        return self._backend_prices.get(backend, {}).get(upstream_model) or self._api_prices.get(upstream_model)

    def operating_point(self, backend: str, running: float | None, usage: Usage) -> OperatingPoint:
        """The batch the call ran in (the configured one when nothing was measured yet), and the
        call's own mean context: its prompt plus half of what it generated."""
        fallback = self._fallback_points.get(backend, OperatingPoint())
        context = usage.prompt_tokens + usage.output / 2
        return OperatingPoint(max(running, 1.0) if running is not None else fallback.running,
                              context if context >= 1 else fallback.mean_context)

    def worst_case_cost(self, backend: str, upstream_model: str, usage: dict) -> float:
        """An upper bound for budget holds: a self-hosted call costs the most when it runs alone
        (nothing to share the GPU-second with), whatever the engine's load turns out to be."""
        pricer = self.pricer(backend, upstream_model)
        if pricer is None:
            return 0.0
        return pricer.cost(normalize_usage(usage), self.operating_point(backend, 1.0, normalize_usage(usage)))

    def price(self, backend: str, upstream_model: str, usage: dict | None, running: float | None,
              flagship_running: float | None = None) -> Price:
        """The call's price at the batch it ran in, and the flagship's at the flagship's own batch
        (or, unknown, at the call's)."""
        normalized = normalize_usage(usage)
        pricer = self.pricer(backend, upstream_model)
        cost = pricer.cost(normalized, self.operating_point(backend, running, normalized)) if pricer else 0.0
        source = "unpriced" if pricer is None else ("roofline" if isinstance(pricer, SelfHostedPricing) else "api")
        if self._flagship_target is None:
            return Price(cost, None, source)
        if self._flagship_target == (backend, upstream_model):
            return Price(cost, cost if pricer else None, source)  # served by the flagship: nothing to compare
        flagship_backend, flagship_model = self._flagship_target
        flagship_pricer = self.pricer(flagship_backend, flagship_model)
        flagship = None
        if flagship_pricer is not None:
            point = self.operating_point(flagship_backend, flagship_running if flagship_running is not None else running,
                                         normalized)
            flagship = flagship_pricer.cost(normalized, point)
        return Price(cost, flagship, source)

    def price_calls(self, calls: Sequence[Served]) -> Price:
        """What a call cost: every upstream call it made (a cascade that escalated pays for both),
        and the flagship counterfactual for the answer that was returned (the last call)."""
        if not calls:
            return Price(0.0, None, "")
        last = calls[-1]
        on_flagship = self._flagship_target == (last.backend, last.upstream_model)
        flagship_running = (self._batch_of(self.flagship_backend, self._window_s)
                            if self.flagship_backend and not on_flagship else None)
        price = self.price(last.backend, last.upstream_model, last.usage, self._batch(last), flagship_running)
        if len(calls) == 1:
            return price
        earlier = [self.price(c.backend, c.upstream_model, c.usage, self._batch(c)).cost_usd for c in calls[:-1]]
        return Price(sum(earlier) + price.cost_usd, price.flagship_cost_usd, price.source, (*earlier, price.cost_usd))

    def _batch(self, served: Served) -> float | None:
        """The batch a self-hosted call ran in; for one that did not say, its replica's recent mean."""
        if served.backend not in self._self_hosted:
            return None
        if served.batch is not None:
            return served.batch
        return average_batch([served.replica.window], time.monotonic(), self._window_s)
