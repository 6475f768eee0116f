"""Pricing calls inside the gateway: the pricer for each (backend, upstream model), the live
operating point of self-hosted replicas, and what the call would have cost on the flagship.

Self-hosted backends with a ``deployment`` are priced by the roofline model; API backends by
their ``prices``, the top-level ``pricing.prices``, or imported LiteLLM price files. A call no
table covers is recorded at $0 with cost source ``unpriced``, never silently guessed.
"""

from __future__ import annotations

from dataclasses import dataclass

from pricing import catalog
from pricing.call_cost import ApiPricing, OperatingPoint, Pricer, SelfHostedPricing
from pricing.prices import TokenPrices, load_litellm_prices, normalize_usage
from pricing.roofline import Deployment, kv_capacity_tokens

from .config import BackendConfig, ConfigError, DeploymentConfig, PriceConfig, Settings
from .engine_metrics import EngineLoad

ENGINE_PROFILE = {"vllm": "vllm", "sglang": "sglang", "tgi": "tgi", "llamacpp": "llamacpp"}


@dataclass(frozen=True)
class Price:
    cost_usd: float
    flagship_cost_usd: float | None
    source: str  # roofline, api or unpriced


def _token_prices(config: PriceConfig, source: str) -> TokenPrices:
    return TokenPrices.per_million(config.input, config.output, config.cached_input, config.cache_write, config.as_of, source)


class Billing:
    def __init__(self, settings: Settings) -> None:
        self._gpus = {e["id"]: catalog.gpu_from_entry(e) for e in settings.pricing.gpus}
        self._models = {e["id"]: catalog.model_from_entry(e) for e in settings.pricing.models}
        self._api_prices: dict[str, TokenPrices] = {}
        for path in settings.pricing.litellm_price_files:
            try:
                self._api_prices.update(load_litellm_prices(path))
            except (OSError, ValueError) as err:
                raise ConfigError(f"cannot read LiteLLM price file {path}: {err}") from None
        self._api_prices.update({name: _token_prices(p, "config") for name, p in settings.pricing.prices.items()})
        self._self_hosted = {b.name: self._self_hosted_pricing(b) for b in settings.backends if b.deployment}
        self._defaults = {b.name: b.deployment for b in settings.backends if b.deployment}
        self._backend_prices = {b.name: b.prices for b in settings.backends}
        self._flagship_target = self._find_flagship(settings)

    def _self_hosted_pricing(self, backend: BackendConfig) -> SelfHostedPricing:
        spec: DeploymentConfig = backend.deployment  # type: ignore[assignment]
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
        return SelfHostedPricing(deployment, price, spec.utilization)

    @staticmethod
    def _find_flagship(settings: Settings) -> tuple[str, str] | None:
        name = settings.pricing.flagship or next((m.name for m in settings.models if m.tier == "flagship"), None)
        model = next((m for m in settings.models if m.name == name), None)
        if model is None:
            return None
        target = model.targets[0]
        return target.backend, target.model or model.name

    def pricer(self, backend: str, upstream_model: str) -> Pricer | None:
        if backend in self._self_hosted:
            return self._self_hosted[backend]
        config = self._backend_prices.get(backend, {}).get(upstream_model)
        if config is not None:
            return ApiPricing(_token_prices(config, f"backend:{backend}"))
        table = self._api_prices.get(upstream_model)
        return ApiPricing(table) if table is not None else None

    def operating_point(self, backend: str, load: EngineLoad | None) -> OperatingPoint:
        """The live point from the replica's metrics, else the configured one."""
        spec = self._defaults.get(backend)
        fallback = OperatingPoint(spec.running, spec.mean_context) if spec else OperatingPoint()
        if load is None or load.running < 1:
            return fallback
        pricing = self._self_hosted.get(backend)
        if pricing is None or load.kv_usage <= 0:
            return OperatingPoint(load.running, fallback.mean_context)
        context = load.kv_usage * kv_capacity_tokens(pricing.deployment) / load.running
        return OperatingPoint(load.running, max(context, 1.0))

    @property
    def flagship_backend(self) -> str | None:
        return self._flagship_target[0] if self._flagship_target else None

    def price(self, backend: str, upstream_model: str, usage: dict | None, load: EngineLoad | None,
              flagship_load: EngineLoad | None = None) -> Price:
        """The call's price at its replica's load, and the flagship's at the flagship's own load."""
        normalized = normalize_usage(usage)
        pricer = self.pricer(backend, upstream_model)
        point = self.operating_point(backend, load)
        cost = pricer.cost(normalized, point) if pricer else 0.0
        flagship = None
        if self._flagship_target is not None:
            flagship_backend, flagship_model = self._flagship_target
            flagship_pricer = self.pricer(flagship_backend, flagship_model)
            if flagship_pricer is not None:
                flagship = flagship_pricer.cost(normalized, self.operating_point(flagship_backend, flagship_load))
        source = "unpriced" if pricer is None else ("roofline" if isinstance(pricer, SelfHostedPricing) else "api")
        return Price(cost, flagship, source)
