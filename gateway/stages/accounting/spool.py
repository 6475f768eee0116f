"""A local append-only spool for ledger records that could not reach Redis.

Each worker appends to its own ``<pid>.jsonl`` (flushed and fsynced per record: this only runs
during an outage). Replaying first renames the file to ``*.replay`` so new appends start a fresh
file, takes an exclusive ``flock`` on it so no two workers replay the same file, and deletes it
once every line is in Redis. Files left by dead processes are adopted the same way.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Generator
from pathlib import Path
from typing import IO


class Spool:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.pid = os.getpid()
        self._file: IO[bytes] | None = None

    @property
    def own_path(self) -> Path:
        return self.directory / f"{self.pid}.jsonl"

    def append(self, line: bytes) -> None:
        if self._file is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._file = open(self.own_path, "ab")
        self._file.write(line + b"\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def pending(self) -> bool:
        """Cheap check for the replay loop: is there anything on disk at all?"""
        try:
            return any(entry.name.endswith((".jsonl", ".replay")) for entry in os.scandir(self.directory))
        except FileNotFoundError:
            return False

    def claim(self) -> list[Path]:
        """Rotate this worker's file and dead workers' files into ``.replay`` files, and list them."""
        if self._file is not None:
            self._file.close()
            self._file = None
        if not self.directory.exists():
            return []
        for path in self.directory.glob("*.jsonl"):
            owner = path.stem
            if owner.isdigit() and (int(owner) == self.pid or not _alive(int(owner))):
                path.rename(path.with_name(f"{owner}-{time.time_ns()}.replay"))
        return sorted(self.directory.glob("*.replay"))

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def locked_lines(path: Path) -> Generator[bytes, None, None] | None:
    """The lines of a replay file while holding its lock, or None if another worker holds it."""
    try:
        handle = open(path, "rb")
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return _lines(handle)


def _lines(handle: IO[bytes]) -> Generator[bytes, None, None]:
    with handle:
        for line in handle:
            if line.strip():
                yield line.rstrip(b"\n")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
