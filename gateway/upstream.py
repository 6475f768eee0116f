"""Upstream calls: pooled connections per backend, replica choice, retries and fallbacks.

A request for a public model walks its targets in order (the fallback chain) and, within a
target, the backend's replicas starting from a round-robin position. Connection errors,
timeouts, 429 and 5xx move on to the next replica or backend; other 4xx answers are the
client's fault and go back to it. Nothing is retried once the first byte reached the client:
the caller primes a stream (reads its first event) inside the attempt, before committing.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Awaitable, Callable

import aiohttp
import orjson

from .config import BackendConfig, Settings
from .errors import APIError

if TYPE_CHECKING:
    from .engine_metrics import EngineLoad

RETRYABLE_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})


@dataclass(eq=False)
class Replica:
    url: str
    index: int = 0
    down_until: float = 0.0
    load: EngineLoad | None = None  # from the engine's /metrics, if it has one
    inflight: int = 0  # this worker's requests on it, from send until the answer is read

    def is_up(self, now: float) -> bool:
        return self.down_until <= now

    @property
    def busy(self) -> float:
        """What least-loaded and prefix-aware choices compare: requests in flight here, plus the
        engine's own queue when its metrics are polled (other gateways' requests show there)."""
        return self.inflight + (self.load.waiting if self.load is not None else 0.0)


class Backend:
    """One configured backend with its own connection pool."""

    def __init__(self, config: BackendConfig) -> None:
        self.config = config
        self.name = config.name
        self.replicas = [Replica(url, index) for index, url in enumerate(config.urls)]
        self._next = itertools.count()
        self.headers = {"content-type": "application/json", **config.headers}
        if config.api_key:
            self.headers["authorization"] = f"Bearer {config.api_key}"
        self.timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=config.connect_timeout_s, sock_read=config.read_timeout_s
        )
        self.session: aiohttp.ClientSession | None = None

    def start(self) -> None:
        connector = aiohttp.TCPConnector(
            limit=self.config.max_connections, keepalive_timeout=30, enable_cleanup_closed=True
        )
        self.session = aiohttp.ClientSession(
            connector=connector, timeout=self.timeout, auto_decompress=True, skip_auto_headers=("User-Agent",)
        )

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()

    def replica_order(self, prefer: Replica | None = None) -> list[Replica]:
        """Replicas to try in turn: ``prefer`` first when it is up, then (least-loaded backends)
        by load or (others) from a rotating start; replicas marked down go to the back."""
        start = next(self._next) % len(self.replicas)
        rotated = self.replicas[start:] + self.replicas[:start]
        if self.config.replica_choice == "least_loaded":
            rotated.sort(key=lambda r: r.busy)
        now = time.monotonic()
        if prefer is not None and prefer in self.replicas and prefer.is_up(now):
            rotated.remove(prefer)
            rotated.insert(0, prefer)
        return [r for r in rotated if r.is_up(now)] + [r for r in rotated if not r.is_up(now)]

    def mark_down(self, replica: Replica) -> None:
        replica.down_until = time.monotonic() + self.config.down_cooldown_s


@dataclass(frozen=True)
class Target:
    backend: Backend
    upstream_model: str


@dataclass(frozen=True)
class Route:
    model: str
    targets: tuple[Target, ...]


@dataclass
class Attempt:
    """The upstream response that will answer the client, and where it came from."""

    response: aiohttp.ClientResponse
    target: Target
    replica: Replica
    primed: object = None  # what the primer read, for the caller to continue from
    finished: bool = False

    def done(self) -> None:
        """The answer has been read (or abandoned): the replica has one request fewer in flight."""
        if not self.finished:
            self.finished = True
            self.replica.inflight -= 1


class UpstreamFailure(Exception):
    """One attempt failed in a way another replica or backend may not."""


# Reads the first part of a streamed answer inside the attempt, so a failure can still be retried.
Primer = Callable[[aiohttp.ClientResponse], Awaitable[object]]


class UpstreamPool:
    def __init__(self, settings: Settings) -> None:
        self.backends = {b.name: Backend(b) for b in settings.backends}
        self.routes = {
            m.name: Route(
                model=m.name,
                targets=tuple(
                    Target(self.backends[t.backend], t.model or m.name) for t in m.targets
                ),
            )
            for m in settings.models
        }
        self.max_attempts = settings.server.max_attempts

    def start(self) -> None:
        for backend in self.backends.values():
            backend.start()

    async def close(self) -> None:
        await asyncio.gather(*(b.close() for b in self.backends.values()))

    def resolve(self, model: str) -> Route:
        route = self.routes.get(model)
        if route is None:
            raise APIError(
                404,
                f"The model '{model}' does not exist or you do not have access to it.",
                code="model_not_found",
                param="model",
            )
        return route

    def _attempt_plan(self, route: Route, prefer: Replica | None) -> list[tuple[Target, Replica]]:
        """Replicas of each target in turn, within ``max_attempts`` but never skipping a fallback."""
        plan: list[tuple[Target, Replica]] = []
        for index, target in enumerate(route.targets):
            later_targets = len(route.targets) - index - 1
            budget = max(1, self.max_attempts - len(plan) - later_targets)
            preferred = prefer if index == 0 else None
            plan += [(target, r) for r in target.backend.replica_order(preferred)[:budget]]
        return plan

    async def send(
        self, route: Route, path: str, body: dict, request_id: str, primer: Primer | None = None,
        prefer: Replica | None = None,
    ) -> Attempt:
        """The first upstream answer that is not a retryable failure, or a 502/504 APIError."""
        failures: list[str] = []
        payloads: dict[str, bytes] = {}
        for target, replica in self._attempt_plan(route, prefer):
            payload = payloads.get(target.upstream_model)
            if payload is None:
                payload = _encode_for(body, target.upstream_model)
                payloads[target.upstream_model] = payload
            try:
                return await self._try(target, replica, path, payload, request_id, primer)
            except UpstreamFailure as failure:
                failures.append(f"{target.backend.name} {replica.url}: {failure}")
        timed_out = bool(failures) and all("timed out" in f for f in failures)
        raise APIError(
            504 if timed_out else 502,
            "no upstream could answer: " + "; ".join(failures),
            code="upstream_timeout" if timed_out else "upstream_unavailable",
        )

    async def _try(
        self, target: Target, replica: Replica, path: str, payload: bytes, request_id: str, primer: Primer | None
    ) -> Attempt:
        backend = target.backend
        assert backend.session is not None, "UpstreamPool.start() was not called"
        headers = {**backend.headers, "x-request-id": request_id}
        replica.inflight += 1
        try:
            return await self._post(target, replica, path, payload, headers, primer)
        except BaseException:
            replica.inflight -= 1
            raise

    async def _post(self, target: Target, replica: Replica, path: str, payload: bytes, headers: dict[str, str],
                    primer: Primer | None) -> Attempt:
        backend = target.backend
        assert backend.session is not None
        try:
            response = await backend.session.post(replica.url + path, data=payload, headers=headers)
        except asyncio.TimeoutError as err:
            # First: aiohttp's socket timeouts are also ClientConnectionErrors. A slow replica is
            # busy, not gone, so it is not marked down.
            raise UpstreamFailure("timed out") from err
        except aiohttp.ClientConnectionError as err:
            backend.mark_down(replica)
            raise UpstreamFailure(f"connection failed ({type(err).__name__})") from err
        if response.status in RETRYABLE_STATUS:
            response.release()
            raise UpstreamFailure(f"HTTP {response.status}")
        if response.status != 200 or primer is None:
            return Attempt(response, target, replica)
        try:
            primed = await primer(response)
        except (aiohttp.ClientError, asyncio.TimeoutError, UpstreamFailure) as err:
            response.close()
            reason = "timed out" if isinstance(err, asyncio.TimeoutError) else f"stream failed ({err})"
            raise UpstreamFailure(reason) from err
        return Attempt(response, target, replica, primed)


def _encode_for(body: dict, upstream_model: str) -> bytes:
    return orjson.dumps({**body, "model": upstream_model})


async def probe_backend(backend: Backend, timeout_s: float = 1.0) -> bool:
    """True if any replica answers its health path with 2xx within the timeout."""
    assert backend.session is not None

    async def probe(replica: Replica) -> bool:
        try:
            async with backend.session.get(
                replica.url + backend.config.health_path,
                headers=backend.headers,
                timeout=aiohttp.ClientTimeout(total=timeout_s),
            ) as response:
                return 200 <= response.status < 300
        except (aiohttp.ClientError, asyncio.TimeoutError):
            return False

    results = await asyncio.gather(*(probe(r) for r in backend.replicas))
    return any(results)
