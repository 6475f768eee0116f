"""The upstreams a gateway worker knows: backends, their replicas, and the routes of public models.

A public model's ``Route`` lists its targets in fallback order; a target is a backend and the name
the backend knows the model by. Within a target, replicas are tried from a round-robin position
(or the least busy first, or the one holding the prompt's prefix); replicas that refused
connections, timed out or missed a deadline go to the back of the order for ``down_cooldown_s``. ``attempt_plan`` turns that into the list of
(target, replica) pairs a request may try; the forwarder walks it.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from ..config import BackendConfig, Settings
from ..errors import APIError
from .engine_metrics import EngineLoad, metrics_url, parse_engine_metrics
from .load import LoadWindow, Stint, average_batch
from .transport import AiohttpTransport, Transport, TransportError

log = logging.getLogger("tollgate.upstream")


def without_userinfo(url: str) -> str:
    """A URL safe to show: ``user:password@`` removed."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


@dataclass(eq=False)
class Replica:
    url: str
    index: int = 0
    down_until: float = 0.0
    load: EngineLoad | None = None  # from the engine's /metrics, if it has one
    metrics_absent: bool = False  # its engine answered without metrics (llama-cpp-python's server)
    metrics_due: float = 0.0  # when to read its metrics next
    max_running: int | None = None  # the engine's slots (deployment.max_running)

    def __post_init__(self) -> None:
        self.shown_url = without_userinfo(self.url)
        self.window = LoadWindow(time.monotonic(), self.max_running)  # how busy it has been: pricing's operating point

    @property
    def inflight(self) -> int:
        """This worker's requests on it, from send until the answer is read (or abandoned)."""
        return self.window.own

    def begin(self) -> Stint:
        return self.window.begin(time.monotonic())

    def end(self, stint: Stint) -> None:
        self.window.end(stint, time.monotonic())

    def mean_running(self, stint: Stint) -> float:
        """The mean batch a request ran in on this replica (so far, if it still runs)."""
        return self.window.mean_running(stint, time.monotonic())

    def is_up(self, now: float) -> bool:
        return self.down_until <= now

    @property
    def busy(self) -> float:
        """What least-loaded and prefix-aware choices compare: requests in flight here, plus the
        engine's own queue when its metrics are polled (other gateways' requests show there)."""
        return self.inflight + (self.load.waiting if self.load is not None else 0.0)


class Backend:
    """One configured backend: its replicas and the transport that reaches them."""

    def __init__(self, config: BackendConfig, transport: Transport | None = None) -> None:
        self.config = config
        self.name = config.name
        slots = config.deployment.max_running if config.deployment else None
        self.replicas = [Replica(url, index, max_running=slots) for index, url in enumerate(config.urls)]
        self._next = itertools.count()
        self.headers = {"content-type": "application/json", **config.headers}
        if config.api_key:
            self.headers["authorization"] = f"Bearer {config.api_key}"
        self.transport: Transport = transport or AiohttpTransport(
            config.connect_timeout_s, config.read_timeout_s, config.max_connections)

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


class UpstreamPool:
    def __init__(self, settings: Settings, transports: dict[str, Transport] | None = None) -> None:
        transports = transports or {}
        self.backends = {b.name: Backend(b, transports.get(b.name)) for b in settings.backends}
        self.routes = {
            m.name: Route(m.name, tuple(Target(self.backends[t.backend], t.model or m.name) for t in m.targets))
            for m in settings.models
        }
        self.max_attempts = settings.server.max_attempts

    def start(self) -> None:
        for backend in self.backends.values():
            backend.transport.start()

    async def close(self) -> None:
        await asyncio.gather(*(b.transport.close() for b in self.backends.values()))

    def resolve(self, model: str) -> Route:
        route = self.routes.get(model)
        if route is None:
            raise APIError(404, f"The model '{model}' does not exist or you do not have access to it.",
                           code="model_not_found", param="model")
        return route

    def attempt_plan(self, route: Route, prefer: Replica | None) -> list[tuple[Target, Replica]]:
        """Replicas of each target in turn, within ``max_attempts`` but never skipping a fallback."""
        plan: list[tuple[Target, Replica]] = []
        for index, target in enumerate(route.targets):
            later_targets = len(route.targets) - index - 1
            budget = max(1, self.max_attempts - len(plan) - later_targets)
            preferred = prefer if index == 0 else None
            plan += [(target, r) for r in target.backend.replica_order(preferred)[:budget]]
        return plan

    def has_up_replica(self, route: Route) -> bool:
        """Whether any replica of the route is outside its down cooldown (a cascade skips a cheap
        model known to be down instead of waiting on it)."""
        now = time.monotonic()
        return any(r.is_up(now) for target in route.targets for r in target.backend.replicas)

    def average_batch(self, backend: str, window_s: float) -> float | None:
        """A backend's mean running sequences while busy, over its replicas and the last ``window_s``."""
        found = self.backends.get(backend)
        return average_batch([r.window for r in found.replicas], time.monotonic(), window_s) if found else None


async def probe_backend(backend: Backend, timeout_s: float = 1.0) -> bool:
    """True if any replica answers its health path with 2xx within the timeout."""

    async def probe(replica: Replica) -> bool:
        try:
            status, _ = await backend.transport.get_text(replica.url + backend.config.health_path, backend.headers, timeout_s)
        except TransportError:
            return False
        return 200 <= status < 300

    return any(await asyncio.gather(*(probe(r) for r in backend.replicas)))


METRICS_ABSENT_RETRY_S = 60.0  # an engine without metrics is asked again this rarely (it may be replaced)


async def poll_engines(backends: list[Backend], interval_s: float) -> None:
    """Refresh every replica's ``load`` forever, and feed its engine counts to its load window."""
    while True:
        now = time.monotonic()
        await asyncio.gather(*(_poll_replica(b, r) for b in backends for r in b.replicas if r.metrics_due <= now))
        await asyncio.sleep(interval_s)


async def _poll_replica(backend: Backend, replica: Replica) -> None:
    """One reading. An engine that answers without usable metrics (llama-cpp-python's server has no
    /metrics: a 404) is said once and asked again only every minute: its calls are priced from this
    gateway's own requests in flight, which is all such an engine's load is when one gateway uses it."""
    path = backend.config.deployment.metrics_path if backend.config.deployment else "/metrics"
    url = metrics_url(replica.url, path)
    try:
        status, text = await backend.transport.get_text(url, {}, 1.0)
    except TransportError:
        replica.load = None  # down or slow: the next interval asks again
        return
    replica.load = parse_engine_metrics(text) if status == 200 else None
    if replica.load is not None:
        replica.window.engine_reading(replica.load.running, replica.load.waiting, time.monotonic())
        if replica.metrics_absent:
            log.info("backend %s replica %s: engine metrics found at %s", backend.name, replica.index,
                     metrics_url(replica.shown_url, path))
        replica.metrics_absent = False
        return
    replica.metrics_due = time.monotonic() + METRICS_ABSENT_RETRY_S
    if not replica.metrics_absent:
        replica.metrics_absent = True
        reason = f"HTTP {status}" if status != 200 else "no running-sequence count in it"
        log.warning("backend %s replica %s: no engine metrics at %s (%s): its calls are priced from this "
                    "gateway's own requests in flight on it; asked again every %.0f s", backend.name, replica.index,
                    metrics_url(replica.shown_url, path), reason, METRICS_ABSENT_RETRY_S)
