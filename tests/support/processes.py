"""Starting real processes for tests: simulators and gateways on free loopback ports."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx

from gateway.ops.demo_stack import free_port

__all__ = ["free_port", "printed_keys", "serve_demo", "start_gateway", "start_sim", "stop", "wait_http"]


def wait_http(url: str, timeout_s: float = 30.0, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process for {url} exited with {process.returncode}")
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.HTTPError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} not up after {timeout_s}s")


def start_sim(model: str, preset: str = "small", time_scale: float = 0.01, *extra: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "enginesim", "--model", model, "--preset", preset, "--port", str(port),
         "--time-scale", str(time_scale), *extra],
        stdout=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    wait_http(base + "/health", process=process)
    return process, base


# Runs the gateway of another checkout (an earlier commit's worktree, say) under these tests, to show
# that a test fails without the change it comes with: TOLLGATE_GATEWAY_PATH=/path/to/checkout pytest ...
GATEWAY_PATH_ENV = "TOLLGATE_GATEWAY_PATH"


def start_gateway(config: Path, env: dict[str, str], cwd: Path, *extra: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    log = open(cwd / f"gateway-{port}.log", "wb")
    other = os.environ.get(GATEWAY_PATH_ENV)
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway", "serve", "--config", str(config), "--port", str(port), *extra],
        env={**os.environ, **env, **({"PYTHONPATH": other} if other else {})}, cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    wait_http(base + "/healthz", process=process)
    return process, base


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def serve_demo(workdir: Path, port: int, *extra: str) -> tuple[subprocess.Popen, list[str]]:
    """``tollgate serve`` without REDIS_URL or keys in the environment (the demo stack, or with
    ``--config x --demo`` its engines beside a config); returns the process and its start-up lines."""
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "TOLLGATE_ADMIN_KEY", "TOLLGATE_KEY_SECRET")}
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway", "serve", "--port", str(port), *extra],
        cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=open(workdir / "serve.err", "ab"), text=True,
    )
    wait_http(f"http://127.0.0.1:{port}/healthz", timeout_s=60, process=process)
    lines = []
    assert process.stdout is not None
    while not lines or not lines[-1].startswith("  (simulated"):
        lines.append(process.stdout.readline().rstrip("\n"))
    time.sleep(0.2)
    return process, lines


def printed_keys(lines: list[str]) -> dict[str, str]:
    """The keys ``serve`` printed once: label -> key."""
    return {m.group(1): m.group(2) for line in lines if (m := re.match(r"\s+(.+? key).*?: (sk-tg-\S+)", line))}
