"""``tollgate serve``: resolve the settings, start what is embedded, then run uvicorn workers."""

from __future__ import annotations

import os
import shutil
import signal
from contextlib import ExitStack
from pathlib import Path

import uvicorn

from ..config import Settings, load_settings, read_secret_files
from ..http.app import SETTINGS_ENV, SUPERVISOR_ENV
from ..stages.pricing import Pricing
from .bootstrap import bootstrap, ensure_key_secret
from .demo_stack import demo_engines
from .embedded import embedded_valkey
from .http_protocol import HEADER_TIMEOUT_ENV, GuardedHttpToolsProtocol


def run(config: Path | None, host: str | None, port: int | None, workers: int | None, demo: bool = False) -> None:
    settings = load_settings(config)
    read_secret_files(settings)
    server = settings.server.model_copy(
        update={k: v for k, v in {"host": host, "port": port, "workers": workers}.items() if v is not None}
    )
    settings = settings.model_copy(update={"server": server})
    data_dir = Path(settings.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        if not settings.redis_url:
            settings.redis_url = stack.enter_context(embedded_valkey(data_dir))
        demo = demo or config is None
        if demo:
            settings = stack.enter_context(demo_engines(settings))
        pricing = Pricing(settings)  # fail now, with a clear message, on unknown GPUs, models or price files
        ensure_key_secret(settings)
        _announce(settings, bootstrap(settings, demo=demo), embedded=demo, unpriced=pricing.unpriced_targets(settings))
        _prepare_worker_env(settings, data_dir)
        # uvicorn re-raises SIGTERM after its graceful shutdown; as an exception it unwinds this
        # `with` block, so the embedded Valkey and simulators are stopped instead of orphaned.
        signal.signal(signal.SIGTERM, _exit_on_sigterm)
        uvicorn.run(
            "gateway.http.app:create_app",
            factory=True,
            host=settings.server.host,
            port=settings.server.port,
            workers=settings.server.workers,
            loop="uvloop",
            http=GuardedHttpToolsProtocol,
            timeout_keep_alive=settings.server.keepalive_timeout_s,
            limit_concurrency=settings.server.max_connections,
            access_log=settings.server.log_requests,
            log_level="info",
            timeout_graceful_shutdown=10,
        )


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(0)


def _prepare_worker_env(settings: Settings, data_dir: Path) -> None:
    os.environ[SETTINGS_ENV] = settings.model_dump_json()
    os.environ[HEADER_TIMEOUT_ENV] = str(settings.server.header_timeout_s)
    os.environ.pop(SUPERVISOR_ENV, None)  # one worker is this process itself: nothing to watch
    if settings.server.workers > 1:
        metrics_dir = data_dir / f"prometheus-{settings.server.port}"
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir(parents=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
        os.environ[SUPERVISOR_ENV] = str(os.getpid())  # each worker leaves when this process is gone


def _announce(settings: Settings, new_keys: list[tuple[str, str]], embedded: bool, unpriced: list[str]) -> None:
    base = f"http://{settings.server.host}:{settings.server.port}/v1"
    lines = [f"Tollgate: OpenAI-compatible endpoint at {base}"]
    lines += [f"  model {m.name}" + (f" ({m.tier})" if m.tier else "") for m in settings.models]
    for target in unpriced:
        lines.append(f"  warning: no price for {target}: its calls are recorded at $0 and budgets do not limit them "
                     "(it is not in the price table: set backends[].prices, pricing.prices or pricing.litellm_price_files)")
    if embedded:
        lines.append("  (simulated engines; pass --config to serve real backends)")
    for label, key in new_keys:
        lines.append(f"  {label}: {key}   <- shown once, store it now")
    print("\n".join(lines), flush=True)
