"""Headless Debian Chromium for page tests: the DOM after scripts ran, and a screenshot."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--virtual-time-budget=15000", "--window-size=1280,1400",
]


def require_chromium() -> str:
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is needed for page tests: `apt-get install chromium` (make test does it)")
    return CHROMIUM


def _run(url: str, *flags: str) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run([require_chromium(), *_FLAGS, f"--user-data-dir={profile}", *flags, url],
                              capture_output=True, text=True, timeout=90)


def rendered_dom(url: str) -> str:
    result = _run(url, "--dump-dom")
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def screenshot(url: str, path: Path) -> Path:
    result = _run(url, f"--screenshot={path}")
    assert result.returncode == 0 and path.exists(), result.stderr[-2000:]
    return path
