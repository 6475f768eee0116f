"""Secrets stay secret: provider keys never echoed to clients, key hashes compared in constant time."""

from __future__ import annotations

import pytest


def test_key_hashes_are_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    import hmac

    from gateway.store import keys

    seen = []
    real = hmac.compare_digest
    monkeypatch.setattr(keys.hmac, "compare_digest", lambda a, b: seen.append((a, b)) or real(a, b))
    assert keys.hashes_match("abc", "abc") and not keys.hashes_match("abc", "abd")
    assert len(seen) == 2  # every comparison goes through hmac.compare_digest


def test_a_repeated_warning_is_logged_once_an_interval_with_a_count(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from gateway.logs import Warnings

    warnings = Warnings(logging.getLogger("tollgate.test"), interval_s=60)
    with caplog.at_level(logging.WARNING, logger="tollgate.test"):
        for _ in range(500):  # Redis down: every request would say it
            warnings.warn("store unreachable")
        warnings.warn("another thing")
    assert [r.getMessage() for r in caplog.records] == ["store unreachable", "another thing"]
    warnings._last["store unreachable"] -= 61  # an interval later
    with caplog.at_level(logging.WARNING, logger="tollgate.test"):
        warnings.warn("store unreachable")
    assert caplog.records[-1].getMessage() == "store unreachable (499 more like it since the last)"
