"""``tollgate serve``: resolve the settings, start what is embedded, then run uvicorn workers."""

from __future__ import annotations

import os
import shutil
import signal
from contextlib import ExitStack
from pathlib import Path

import uvicorn

from .app import SETTINGS_ENV
from .billing import Billing
from .bootstrap import bootstrap, ensure_key_secret
from .config import Settings, load_settings
from .demo_stack import demo_engines
from .embedded import embedded_valkey


def run(config: Path | None, host: str | None, port: int | None, workers: int | None) -> None:
    settings = load_settings(config)
    server = settings.server.model_copy(
        update={k: v for k, v in {"host": host, "port": port, "workers": workers}.items() if v is not None}
    )
    settings = settings.model_copy(update={"server": server})
    data_dir = Path(settings.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        if not settings.redis_url:
            settings.redis_url = stack.enter_context(embedded_valkey(data_dir))
        if config is None:
            settings = stack.enter_context(demo_engines(settings))
        billing = Billing(settings)  # fail now, with a clear message, on unknown GPUs, models or price files
        ensure_key_secret(settings)
        _announce(settings, bootstrap(settings), embedded=config is None, unpriced=billing.unpriced_targets(settings))
        _prepare_worker_env(settings, data_dir)
        # uvicorn re-raises SIGTERM after its graceful shutdown; as an exception it unwinds this
        # `with` block, so the embedded Valkey and simulators are stopped instead of orphaned.
        signal.signal(signal.SIGTERM, _exit_on_sigterm)
        uvicorn.run(
            "gateway.app:create_app",
            factory=True,
            host=settings.server.host,
            port=settings.server.port,
            workers=settings.server.workers,
            loop="uvloop",
            http="httptools",
            access_log=settings.server.log_requests,
            log_level="info",
            timeout_graceful_shutdown=10,
        )


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(0)


def _prepare_worker_env(settings: Settings, data_dir: Path) -> None:
    os.environ[SETTINGS_ENV] = settings.model_dump_json()
    if settings.server.workers > 1:
        metrics_dir = data_dir / f"prometheus-{settings.server.port}"
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir(parents=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)


def _announce(settings: Settings, new_keys: list[tuple[str, str]], embedded: bool, unpriced: list[str]) -> None:
    base = f"http://{settings.server.host}:{settings.server.port}/v1"
    lines = [f"Tollgate: OpenAI-compatible endpoint at {base}"]
    lines += [f"  model {m.name}" + (f" ({m.tier})" if m.tier else "") for m in settings.models]
    for target in unpriced:
        lines.append(f"  warning: no price for {target}: its calls are recorded at $0 and budgets do not limit them "
                     "(set backends[].prices, pricing.prices or pricing.litellm_price_files)")
    if embedded:
        lines.append("  (simulated engines; pass --config to serve real backends)")
    for label, key in new_keys:
        lines.append(f"  {label}: {key}   <- shown once, store it now")
    print("\n".join(lines), flush=True)
