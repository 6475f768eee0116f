"""What the test tiers (and the benchmarks) share: processes, the test stack, data and fakes."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the repository
