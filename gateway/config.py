"""Gateway configuration: a YAML file with ``${ENV}`` expansion, validated by pydantic.

Secrets (provider API keys, the key-hashing secret, an admin key) should never be written into
the file itself; write ``${OPENAI_API_KEY}`` and let the environment supply them. Expansion runs
on parsed string values, not on the raw text, so a secret containing YAML syntax cannot change
the document's structure.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

ENGINE_KINDS = ("vllm", "sglang", "tgi", "llamacpp")
BackendKind = Literal["vllm", "sglang", "tgi", "llamacpp", "openai"]

_ENV_PATTERN = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class ConfigError(ValueError):
    """The configuration cannot be used; the message says which field and why."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PriceConfig(_Strict):
    """USD per 1M tokens, as price pages show them."""

    input: float = Field(ge=0)
    output: float = Field(ge=0)
    cached_input: float | None = Field(None, ge=0)
    cache_write: float | None = Field(None, ge=0)
    as_of: str | None = None


class DeploymentConfig(_Strict):
    """What a self-hosted backend runs on, for the roofline price of its calls."""

    model: str  # catalog id, pricing.models entry, or a config.json path
    gpu: str
    gpus: int = Field(1, ge=1)
    precision: str = "bf16"
    kv_precision: str | None = None
    usd_per_gpu_hour: float | None = Field(None, ge=0)
    # The share of paid time you plan it to be busy: a planning input, shown beside the measured
    # utilization in `tollgate report --by backend`. Prices never include idle time (docs/pricing.md).
    utilization: float = Field(0.6, gt=0, le=1)
    # The operating point of a call no measurement covers. The gateway measures every call it
    # forwards (its own batch, docs/pricing.md), so this is a fallback, not an assumption in prices.
    running: float = Field(16, ge=1)
    mean_context: float = Field(1024, ge=1)
    # The most sequences the engine runs at once (its slots: llama.cpp's --parallel, vLLM's
    # --max-num-seqs). Requests beyond it wait in the engine's queue, and an engine without metrics
    # cannot say so: the cap keeps them from being counted as sharing the batch (priced too low).
    max_running: int | None = Field(None, ge=1)
    metrics_path: str = "/metrics"  # on the server root, beside the /v1 base URL
    # Overrides of the calibrated factors (bandwidth, compute, prefill, step_overhead_s, ...).
    efficiency: dict[str, float] = Field(default_factory=dict)


class BackendConfig(_Strict):
    """One upstream: a self-hosted engine (one or more replicas) or an API provider."""

    name: str
    kind: BackendKind = "vllm"
    # Base URLs including the API prefix, exactly as the OpenAI SDK's ``base_url``
    # (e.g. ``http://10.0.0.5:8000/v1``). Several URLs are replicas of one deployment.
    urls: list[str] = Field(min_length=1)
    api_key: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    connect_timeout_s: float = Field(2.0, gt=0)
    # Longest silence tolerated between two bytes of an upstream response.
    read_timeout_s: float = Field(60.0, gt=0)
    max_connections: int = Field(256, ge=1)
    health_path: str = "/models"
    # How long a replica is skipped after a connection failure before it is tried again.
    down_cooldown_s: float = Field(5.0, ge=0)
    # How a request picks among several replicas: rotating, the least busy, or the one holding
    # the prompt's prefix in KV cache (the default for self-hosted engines).
    replica_choice: Literal["round_robin", "least_loaded", "prefix"] | None = None
    deployment: DeploymentConfig | None = None  # self-hosted: priced by the roofline model
    prices: dict[str, PriceConfig] = Field(default_factory=dict)  # API: per upstream model name

    @field_validator("urls")
    @classmethod
    def _strip_slash(cls, urls: list[str]) -> list[str]:
        for url in urls:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"backend url must start with http:// or https://: {url!r}")
        return [url.rstrip("/") for url in urls]

    @property
    def self_hosted(self) -> bool:
        return self.kind in ENGINE_KINDS


class ModelTarget(_Strict):
    """Where a public model name can be served: a backend and the name the backend knows it by."""

    backend: str
    model: str | None = None


class ModelConfig(_Strict):
    """A model name clients may ask for, and its backends in fallback order."""

    name: str
    targets: list[ModelTarget] = Field(min_length=1)
    # The router's role for this model: the cheap tier or the flagship (used by later stages).
    tier: Literal["cheap", "flagship"] | None = None


class ServerConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    workers: int = Field(1, ge=1)
    max_body_bytes: int = Field(4 * 1024 * 1024, ge=1024)
    # Hard bound on one request's total time at the gateway, retries included.
    request_timeout_s: float = Field(600.0, gt=0)
    # Upstream attempts per request across replicas and fallback backends.
    max_attempts: int = Field(3, ge=1)
    log_requests: bool = False
    max_header_bytes: int = Field(32 * 1024, ge=1024)  # larger request headers get 431
    # Browser origins allowed to call the API (CORS). Closed by default: no CORS headers at all.
    cors_origins: list[str] = Field(default_factory=list)
    # A connection must finish sending a request's headers this soon after it opens (or after its
    # previous answer), else it is closed: slow-header (slowloris) connections cannot pile up.
    header_timeout_s: float = Field(10.0, gt=0)
    keepalive_timeout_s: int = Field(5, ge=1)  # an idle keep-alive connection is closed after this (seconds)
    # Requests and connections one worker takes at once; past this, new requests get 503.
    max_connections: int = Field(2048, ge=1)
    # /metrics carries every tenant's spend: "key" needs the admin key or the metrics key, "none"
    # serves it to anyone who can reach the port (only where the port is private).
    metrics_auth: Literal["key", "none"] = "key"
    metrics_key: str | None = None  # or env TOLLGATE_METRICS_KEY, or metrics_key_file
    metrics_key_file: str | None = None  # a file holding the key (a mounted secret, say)


class AuthConfig(_Strict):
    # Secret for the keyed hash of API keys. Must be the same on every replica.
    key_hash_secret: str | None = None
    # Optional fixed admin key (e.g. from a secret store); bootstrap prints one otherwise.
    admin_key: str | None = None
    # How long a key lookup is trusted in-process; revocation reaches every replica within it.
    cache_ttl_s: float = Field(0.5, ge=0, le=1.0)
    # While Redis is unreachable, a key verified this recently keeps working (0: fail closed).
    stale_on_error_s: float = Field(300.0, ge=0)


class PricingConfig(_Strict):
    # API models are priced from the shipped snapshot of LiteLLM's public table (or the newer one
    # `tollgate pricing update` wrote into data_dir); files and prices below override it.
    price_table: bool = True
    litellm_price_files: list[str] = Field(default_factory=list)  # model_prices_and_context_window.json format
    prices: dict[str, PriceConfig] = Field(default_factory=dict)  # by upstream model name, any backend
    gpus: list[dict] = Field(default_factory=list)  # extra catalog GPUs (fields as pricing/data/gpus.json)
    models: list[dict] = Field(default_factory=list)  # extra architectures (fields as pricing/data/models.json)
    flagship: str | None = None  # public model for the "flagship only" counterfactual; default: tier flagship
    metrics_poll_s: float = Field(1.0, gt=0)  # engines' /metrics: their running sequences and queues
    # The flagship counterfactual is priced at the flagship's mean batch while busy over this window.
    load_window_s: float = Field(60.0, ge=1, le=170)


class CascadeConfig(_Strict):
    """Cheap model first; the flagship only when the cheap answer's confidence is low."""

    enabled: bool = False  # model="auto" cascades when the router picks the cheap model
    escalation_threshold: float = Field(0.5, ge=0, le=1)  # default; live changes go through /admin/router
    holdback_tokens: int = Field(16, ge=1, le=512)  # streams: tokens held back to decide
    # The cheap engine must send its first token within this; otherwise the flagship answers.
    first_byte_timeout_s: float = Field(2.0, gt=0)
    scorer: Literal["mean_min", "mean", "min", "tail", "head"] = "mean_min"  # router.confidence.SCORERS
    keep_labels: bool = True  # keep (prompt, escalated) pairs for `tollgate router train --from-ledger`
    max_labels: int = Field(100_000, ge=100)


class RouterConfig(_Strict):
    """The learned cheap-or-flagship router behind ``model="auto"``, ``router:<t>`` and ``cascade``."""

    artifact: str  # a router trained with `tollgate router train`
    cheap: str  # public model names
    flagship: str
    threshold: float = Field(0.5, ge=0, le=1)  # default; live changes go through /admin/router
    cascade: CascadeConfig = Field(default_factory=CascadeConfig)


class LimitValues(_Strict):
    """One scope's limits (None: unlimited); tenants and keys override them through the admin API."""

    rpm: int | None = Field(None, ge=0)
    tpm: int | None = Field(None, ge=0)
    daily_usd: float | None = Field(None, ge=0)
    monthly_usd: float | None = Field(None, ge=0)


class LimitsConfig(_Strict):
    tenant: LimitValues = Field(default_factory=LimitValues)  # defaults for every tenant as a whole
    key: LimitValues = Field(default_factory=LimitValues)  # defaults for every single key
    # When Redis cannot be reached: admit and count later (open) or answer 503 (closed).
    on_store_error: Literal["open", "closed"] = "open"
    # Output tokens reserved per completion when a request sets no max_tokens. A caller with a token
    # limit or a budget gets this as its max_tokens upstream too, so that what is reserved holds.
    default_output_tokens: int = Field(4096, ge=1)
    # Admission counts prompts with cl100k; engines' tokenizers and chat templates differ. This share
    # (plus 16 tokens a call) is reserved on top, and reconciled with the engine's usage afterwards.
    prompt_token_margin: float = Field(0.1, ge=0, le=2)
    # Tokens an image, audio or file part of a message counts for at admission.
    non_text_part_tokens: int = Field(1536, ge=0)


class LedgerConfig(_Strict):
    # Newest raw records kept in Redis per tenant (~0.7 KB each); archive older ones with
    # `tollgate ledger export`. Reports never need them: they read the day aggregates.
    max_records_per_tenant: int = Field(250_000, ge=1000)
    retention_days: int = Field(400, ge=1)  # how long day aggregates (the reports) are kept
    # How long a written request id is remembered so that a spool replay cannot count a call twice
    # (one small key per call: at 1,000 calls/s the default holds ~900k keys, ~80 MB).
    dedupe_ttl_s: int = Field(900, ge=60)


class ModerationPattern(_Strict):
    name: str = Field("custom", max_length=60)
    pattern: str = Field(max_length=500)


class ClassifierConfig(_Strict):
    artifact: str  # from `tollgate moderation train`
    threshold: float = Field(0.5, gt=0, lt=1)


class ExternalModerationConfig(_Strict):
    """An OpenAI /v1/moderations-shaped classifier (e.g. Llama Guard served by vLLM)."""

    url: str  # base URL, e.g. http://10.0.0.9:8000/v1
    model: str | None = None
    api_key: str | None = None
    timeout_s: float = Field(1.0, gt=0, le=30)
    on_error: Literal["open", "closed"] = "open"
    check_output: bool = False  # also classify whole answers (streams are not sent)


class ModerationConfig(_Strict):
    """Prompt and answer checks; a tenant's overrides (admin API) are applied on top."""

    enabled: bool = True
    input: dict[str, str] = Field(default_factory=dict)  # category -> allow|flag|redact|block
    output: dict[str, str] = Field(default_factory=dict)
    patterns: list[ModerationPattern] = Field(default_factory=list)
    deny_list: list[str] = Field(default_factory=list)
    injection_threshold: float = Field(0.5, gt=0, le=1)
    classifier: ClassifierConfig | None = None
    external: ExternalModerationConfig | None = None
    # Streamed answers are released this many characters behind the newest token when output
    # checks are on: longer catches longer secrets split across chunks, but delays the first token.
    stream_window_chars: int = Field(128, ge=16, le=8192)


class ExactCacheConfig(_Strict):
    enabled: bool = True
    ttl_s: int = Field(3600, ge=1)
    max_entry_bytes: int = Field(256 * 1024, ge=1024)  # larger answers are not stored
    deterministic_only: bool = True  # cache only temperature 0 or seeded requests


class PrefixRoutingConfig(_Strict):
    """Sending a prompt to the replica that holds its prefix in KV cache (backends with several replicas)."""

    enabled: bool = True
    block_tokens: int = Field(16, ge=1, le=1024)  # vLLM's default block size
    max_blocks: int = Field(512, ge=1)  # prefixes are tracked up to this many blocks
    ttl_s: int = Field(300, ge=1)  # how long a replica is assumed to keep a block (eviction)
    # A holder whose requests in flight (+1) exceed this x the mean (+1) is passed over for the
    # least busy replica. Measured (docs/benchmarks.md): 2.0 keeps the busiest replica within
    # about 1.15x the mean while keeping 98% of the hit rate; 1.3 diverted too eagerly (88%).
    max_load_ratio: float = Field(2.0, ge=1.0)
    # Each tenant's prefix cache is its own: vLLM and SGLang get a per-tenant ``cache_salt`` and the
    # index is kept per tenant, so no tenant can probe another's prompts through cached tokens, prices
    # or timing. Tenants given the same ``prefix_cache_group`` share (admin API). False: one shared cache.
    isolate_tenants: bool = True


class CacheConfig(_Strict):
    exact: ExactCacheConfig = Field(default_factory=ExactCacheConfig)
    prefix: PrefixRoutingConfig = Field(default_factory=PrefixRoutingConfig)


class TracingConfig(_Strict):
    """OpenTelemetry traces over OTLP/HTTP (protobuf): off unless enabled."""

    enabled: bool = False
    endpoint: str = "http://127.0.0.1:4318/v1/traces"  # an OpenTelemetry Collector, Jaeger, Tempo...
    headers: dict[str, str] = Field(default_factory=dict)  # e.g. an API key of a hosted backend
    service_name: str = "tollgate"
    sample_ratio: float = Field(1.0, ge=0, le=1)  # share of requests traced


class Settings(_Strict):
    server: ServerConfig = Field(default_factory=ServerConfig)
    redis_url: str | None = None
    data_dir: str = ".tollgate"
    auth: AuthConfig = Field(default_factory=AuthConfig)
    backends: list[BackendConfig] = Field(default_factory=list)
    models: list[ModelConfig] = Field(default_factory=list)
    pricing: PricingConfig = Field(default_factory=PricingConfig)
    router: RouterConfig | None = None
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    ledger: LedgerConfig = Field(default_factory=LedgerConfig)
    moderation: ModerationConfig = Field(default_factory=ModerationConfig)
    cache: CacheConfig = Field(default_factory=CacheConfig)
    tracing: TracingConfig = Field(default_factory=TracingConfig)

    @model_validator(mode="after")
    def _check_references(self) -> Settings:
        names = [b.name for b in self.backends]
        _require_unique(names, "backend")
        _require_unique([m.name for m in self.models], "model")
        for model in self.models:
            for target in model.targets:
                if target.backend not in names:
                    raise ValueError(
                        f"model {model.name!r} names unknown backend {target.backend!r}"
                    )
        model_names = {m.name for m in self.models}
        if self.pricing.flagship and self.pricing.flagship not in model_names:
            raise ValueError(f"pricing.flagship names unknown model {self.pricing.flagship!r}")
        if self.router and not {self.router.cheap, self.router.flagship} <= model_names:
            raise ValueError("router.cheap and router.flagship must name configured models")
        return self

    def backend(self, name: str) -> BackendConfig:
        return next(b for b in self.backends if b.name == name)


def _require_unique(names: list[str], what: str) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ValueError(f"duplicate {what} name {name!r}")
        seen.add(name)


def expand_env(value: Any, environ: Mapping[str, str] | None = None) -> Any:
    """Replace ``${VAR}`` and ``${VAR:-default}`` in every string of a parsed document."""
    env = os.environ if environ is None else environ
    if isinstance(value, dict):
        return {key: expand_env(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [expand_env(item, env) for item in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return default
        raise ConfigError(f"environment variable {name} is not set (used as ${{{name}}})")

    return _ENV_PATTERN.sub(substitute, value)


def parse_settings(document: dict[str, Any], environ: dict[str, str] | None = None) -> Settings:
    """Validate a parsed config document; errors name the offending field."""
    from pydantic import ValidationError

    try:
        return Settings.model_validate(expand_env(document, environ))
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}" for e in err.errors()
        )
        raise ConfigError(f"invalid configuration: {problems}") from None


def load_settings(path: str | Path | None, environ: dict[str, str] | None = None) -> Settings:
    """Read a YAML config file (or defaults when ``path`` is None); ``REDIS_URL`` fills in redis."""
    env = dict(os.environ if environ is None else environ)
    document: dict[str, Any] = {}
    if path is not None:
        try:
            loaded = yaml.safe_load(Path(path).read_text())
        except (OSError, yaml.YAMLError) as err:
            raise ConfigError(f"cannot read config {path}: {err}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"config {path} must be a mapping at the top level")
        document = loaded or {}
    settings = parse_settings(document, env)
    if settings.redis_url is None and env.get("REDIS_URL"):
        settings.redis_url = env["REDIS_URL"]
    if settings.auth.admin_key is None and env.get("TOLLGATE_ADMIN_KEY"):
        settings.auth.admin_key = env["TOLLGATE_ADMIN_KEY"]
    if settings.auth.key_hash_secret is None and env.get("TOLLGATE_KEY_SECRET"):
        settings.auth.key_hash_secret = env["TOLLGATE_KEY_SECRET"]
    if settings.server.metrics_key is None and env.get("TOLLGATE_METRICS_KEY"):
        settings.server.metrics_key = env["TOLLGATE_METRICS_KEY"]
    return settings


def read_secret_files(settings: Settings) -> None:
    """Fill in secrets kept in files (mounted secrets), at start-up: a missing file is a clear error."""
    if settings.server.metrics_key is None and settings.server.metrics_key_file:
        try:
            settings.server.metrics_key = Path(settings.server.metrics_key_file).read_text().strip() or None
        except OSError as err:
            raise ConfigError(f"server.metrics_key_file: {err}") from None
