"""Prefer a replica: the one holding the prompt's prefix in its KV cache (rules in ``cache/prefix.py``).

The index is shared by every gateway replica: one Redis key per block hash,
``tg:px:{b:<backend>}:<hash>`` -> the index of the replica that last served it, with a TTL that
approximates the engine's eviction. A choice is one MGET; the chosen replica is written to the
index at once (one script run, off the request's critical path), and again if a retry moved the
request to another replica. The expected cached tokens lower the price estimate at admission; the engine's own ``cached_tokens``
are what is billed.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis.exceptions import RedisError

from cache import prefix
from wire import tokens

from ..config import ENGINE_KINDS, PrefixRoutingConfig
from ..logs import Warnings
from ..store.fast_redis import Script, ScriptRunner
from ..upstream.pool import Backend, Replica, Route

log = logging.getLogger("tollgate.prefix")
throttled = Warnings(log)
_LOCAL_CLAIMS = 100_000
_SALTS_KEPT = 100_000
REMEMBER = Script("for _, key in ipairs(KEYS) do redis.call('SET', key, ARGV[1], 'EX', ARGV[2]) end return #KEYS")


class CacheSalts:
    """Each tenant's prefix-cache namespace, as the ``cache_salt`` vLLM and SGLang take: a keyed hash
    of its cache group (by default its own id), so nobody can guess or name another group's salt.

    Engines share their prefix cache across requests. Without a salt, a tenant could learn whether
    another tenant sent a prompt by timing a guess of it, or reading its ``cached_tokens`` and price.
    Tenants that share a group (a common system prompt, say) share cached prefixes, and that risk."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret
        self._salts: dict[str, str] = {}

    def of(self, group: str) -> str:
        salt = self._salts.get(group)
        if salt is None:
            if len(self._salts) >= _SALTS_KEPT:
                self._salts.clear()
            salt = self._salts[group] = hmac.new(self._secret, b"prefix-cache:" + group.encode(), hashlib.sha256).hexdigest()[:32]
        return salt


@dataclass(frozen=True, slots=True)
class Preference:
    """The replica expected to hold the prompt's prefix, and how many prompt tokens it holds."""

    replica: Replica
    expected_cached_tokens: int
    keys: tuple[str, ...]  # the prompt's block keys in the shared index


def uses_prefix_choice(backend: Backend) -> bool:
    choice = backend.config.replica_choice
    default = "prefix" if backend.config.kind in ENGINE_KINDS else "round_robin"
    return len(backend.replicas) > 1 and (choice or default) == "prefix"


class PrefixRouter:
    def __init__(self, config: PrefixRoutingConfig, scripts: ScriptRunner) -> None:
        self.config = config
        self.scripts = scripts
        self._pending: set[asyncio.Task] = set()
        self._turn = 0
        # This worker's own recent claims, so that a burst of requests on one prefix follows the
        # first even before its claim has reached Redis. Bounded; Redis stays the shared truth.
        self._claims: OrderedDict[str, tuple[str, float]] = OrderedDict()

    async def choose(self, body: dict[str, Any], route: Route, salt: str = "") -> Preference | None:
        """For a self-hosted backend with several replicas: the replica to prefer; None otherwise.
        ``salt`` is the caller's prefix-cache namespace: another namespace's blocks are never matched."""
        backend = route.targets[0].backend
        if not uses_prefix_choice(backend):
            return None
        token_ids = tokens.encoding().encode_ordinary(prefix.flatten(body))
        hashes = prefix.block_hashes(token_ids, self.config.block_tokens, self.config.max_blocks, salt)
        if not hashes:
            return None
        keys = [f"tg:px:{{b:{backend.name}}}:{h}" for h in hashes]
        try:
            holders = await self.scripts.command("MGET", *keys)
        except (RedisError, OSError) as err:
            throttled.warn(f"prefix index unavailable ({type(err).__name__}): least-loaded choice")
            holders = [None] * len(keys)
        holders = [self._claimed(key) or shared for key, shared in zip(keys, holders, strict=True)]
        matched, holder = prefix.longest_prefix(holders)
        holder_index = int(holder) if holder is not None and holder.isdigit() else None
        self._turn += 1
        index = prefix.choose(holder_index, [r.busy for r in backend.replicas], self.config.max_load_ratio, self._turn)
        expected = matched * self.config.block_tokens if index == holder_index else 0
        # Claimed now, not when the answer starts: requests for the same prefix arriving meanwhile
        # (a burst of conversations on one system prompt) follow instead of copying it elsewhere.
        self.remember(keys, backend.replicas[index])
        return Preference(backend.replicas[index], expected, tuple(keys))

    def served(self, preference: Preference, replica: Replica) -> None:
        """The call was answered by ``replica``: if a retry moved it, that replica holds the prefix now."""
        if replica is not preference.replica:
            self.remember(preference.keys, replica)

    def remember(self, keys: Sequence[str], replica: Replica) -> None:
        """The replica that served this prompt now holds its blocks (written in the background)."""
        expires = time.monotonic() + self.config.ttl_s
        for key in keys:
            self._claims[key] = (str(replica.index), expires)
            self._claims.move_to_end(key)
        while len(self._claims) > _LOCAL_CLAIMS:
            self._claims.popitem(last=False)
        task = asyncio.get_running_loop().create_task(self._remember(keys, replica.index))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    def _claimed(self, key: str) -> str | None:
        claim = self._claims.get(key)
        return claim[0] if claim is not None and claim[1] > time.monotonic() else None

    async def _remember(self, keys: Sequence[str], index: int) -> None:
        try:
            await self.scripts.run(REMEMBER, keys, [index, self.config.ttl_s])
        except (RedisError, OSError) as err:
            throttled.warn(f"prefix index not updated: {type(err).__name__}")
