"""docker-compose.yml: valid for Compose, and the topology it promises (no Docker engine here)."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
import yaml

from gateway.config import load_settings
from tests.support import ROOT


def test_compose_file_is_valid_for_docker_compose() -> None:
    tool = shutil.which("docker-compose")
    if tool is None:
        pytest.fail("Debian's docker-compose is needed: `apt-get install docker-compose` (make test does it)")
    env = {**os.environ, "TOLLGATE_KEY_SECRET": "s" * 32, "TOLLGATE_ADMIN_KEY": "a" * 24}
    result = subprocess.run([tool, "-f", str(ROOT / "docker-compose.yml"), "config", "-q"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    unset = subprocess.run([tool, "-f", str(ROOT / "docker-compose.yml"), "config", "-q"], cwd=ROOT, capture_output=True,
                           text=True, timeout=60, env={k: v for k, v in env.items() if k != "TOLLGATE_KEY_SECRET"})
    assert unset.returncode != 0 and "TOLLGATE_KEY_SECRET" in unset.stderr  # secrets must be given, never defaulted


def test_the_topology_two_gateways_behind_nginx_scraped_by_prometheus() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    gateways = [name for name, spec in services.items() if name.startswith("gateway-")]
    assert len(gateways) >= 2 and {"valkey", "lb", "prometheus", "engine-small", "engine-large"} <= set(services)
    for name in gateways:
        assert services[name]["environment"]["REDIS_URL"] == "redis://valkey:6379/0"
        assert "--workers" in services[name]["command"]
    nginx = (ROOT / "deploy" / "nginx.conf").read_text()
    prometheus = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())
    targets = {t for job in prometheus["scrape_configs"] for group in job["static_configs"] for t in group["targets"]}
    for name in gateways:
        assert f"server {name}:8080" in nginx and f"{name}:8080" in targets
    assert "proxy_buffering off" in nginx  # streams pass through
    assert "location = /metrics { return 404; }" in nginx  # every tenant's spend is not for the outside
    gateway_job = next(job for job in prometheus["scrape_configs"] if job["job_name"] == "tollgate")
    assert gateway_job["authorization"]["credentials_file"] == "/run/secrets/metrics_key"
    assert all(services[name]["secrets"] == ["metrics_key"] for name in gateways)


def test_the_compose_gateway_config_is_valid() -> None:
    settings = load_settings(ROOT / "deploy" / "tollgate.compose.yaml", {"REDIS_URL": "redis://valkey:6379/0"})
    assert {b.name for b in settings.backends} == {"small", "large"} and settings.router is not None
    assert settings.server.metrics_auth == "key" and settings.server.metrics_key_file == "/run/secrets/metrics_key"
