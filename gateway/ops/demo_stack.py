"""The self-contained stack ``tollgate serve`` starts without a config file.

Two simulated engines stand in for self-hosted GPUs: a cheap small model and a flagship large
one, each a real process speaking vLLM's API on a loopback port and timed by the pricing model
for its GPUs. The gateway in front of them is configured exactly as it would be for real engines,
including the deployments that price their calls, and with the default router behind
``model="auto"`` (cascade on) and ``model="cascade"``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import router
from enginesim.presets import PRESETS

from ..config import BackendConfig, CascadeConfig, DeploymentConfig, ModelConfig, ModelTarget, RouterConfig, Settings

# The router shipped with the project (docs/router.md says what it knows and how it was built).
DEFAULT_ROUTER = Path(router.__file__).resolve().parent / "data" / "default-router.json"

DEMO_MODELS = (
    # public name, simulator preset, router tier
    ("llama-3.1-8b", "small", "cheap"),
    ("llama-3.1-70b", "large", "flagship"),
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_simulator(model: str, preset: str, port: int, extra: list[str] | None = None) -> subprocess.Popen:
    command = [
        sys.executable, "-m", "enginesim", "--model", model, "--preset", preset,
        "--port", str(port), "--parent-pid", str(os.getpid()), *(extra or []),
    ]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL)


def wait_until_up(url: str, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1.0):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not come up within {timeout_s:g}s")


@contextmanager
def demo_engines(settings: Settings) -> Iterator[Settings]:
    """Start the two simulators and return ``settings`` with their backends and models added (after
    the config's own, with ``serve --config x --demo``)."""
    processes: list[subprocess.Popen] = []
    backends, models = [], []
    try:
        for model, preset, tier in DEMO_MODELS:
            port = free_port()
            processes.append(start_simulator(model, preset, port))
            url = f"http://127.0.0.1:{port}/v1"
            wait_until_up(url + "/models")
            deployment = DeploymentConfig(**PRESETS[preset].as_config())
            backends.append(BackendConfig(name=f"sim-{preset}", kind="vllm", urls=[url], deployment=deployment))
            models.append(ModelConfig(name=model, tier=tier, targets=[ModelTarget(backend=f"sim-{preset}")]))
        router_config = settings.router or RouterConfig(
            artifact=str(DEFAULT_ROUTER), cheap=DEMO_MODELS[0][0], flagship=DEMO_MODELS[1][0],
            cascade=CascadeConfig(enabled=True),
        )
        yield settings.model_copy(update={"backends": [*settings.backends, *backends],
                                          "models": [*settings.models, *models], "router": router_config})
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
