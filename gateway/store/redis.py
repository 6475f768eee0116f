"""The Redis client for everything but the request path's scripts (admin, reports, labels, auth)."""

from __future__ import annotations

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry  # the asyncio one: the sync Retry never awaits, so never retries
from redis.backoff import NoBackoff

REDIS_TIMEOUT_S = 1.0
REDIS_MAX_CONNECTIONS = 64
CLUSTER_SCHEME = "redis+cluster://"


def redis_client(url: str) -> Redis:
    """A Redis client whose every call gives up after a bounded time instead of hanging.

    The pool blocks (up to the same timeout) when all its connections are busy, instead of
    failing at once as redis-py's default pool does past 100 concurrent calls: under a burst,
    requests queue for a connection for a few milliseconds rather than erroring. A command that
    fails on a connection that died while idle (Redis restarted) is retried once on a fresh one.
    ``redis+cluster://host:port`` connects to a Redis/Valkey Cluster through any of its nodes.
    """
    if url.startswith(CLUSTER_SCHEME):
        return RedisCluster.from_url(  # type: ignore[return-value]
            "redis://" + url[len(CLUSTER_SCHEME):],
            socket_timeout=REDIS_TIMEOUT_S,
            socket_connect_timeout=REDIS_TIMEOUT_S,
            max_connections=REDIS_MAX_CONNECTIONS,
            cluster_error_retry_attempts=2,
        )
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=REDIS_MAX_CONNECTIONS,
        timeout=REDIS_TIMEOUT_S,
        socket_timeout=REDIS_TIMEOUT_S,
        socket_connect_timeout=REDIS_TIMEOUT_S,
        retry=Retry(NoBackoff(), 1),
        health_check_interval=30,
    )
    return Redis.from_pool(pool)  # owns the pool: aclose() closes its connections


def as_text(value: bytes | str) -> str:
    """A reply from Redis as text (the clients here return bytes)."""
    return value.decode() if isinstance(value, bytes) else value


def is_stream_id(text: str) -> bool:
    """A Redis stream id, ``<ms>-<seq>``, each part below 2**64 (cursors clients hand back)."""
    left, dash, right = text.partition("-")
    return (bool(dash) and left.isdigit() and right.isdigit() and len(left) <= 20 and len(right) <= 20
            and int(left) < 2**64 and int(right) < 2**64)
