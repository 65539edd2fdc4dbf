"""The redis-py client behind :class:`~silentauth.stores.redis.RedisStore`: which one, and its failures.

A ``DATABASE_URL`` names one Redis (``redis://``, ``rediss://``) or a Redis
Cluster (``redis+cluster://host:port[,host:port...]``, ``rediss+cluster://``);
``?wait_replicas=N`` is this store's own parameter (see
:mod:`silentauth.stores.redis_wait`) and is taken off before redis-py sees
the URL. :func:`unavailable` says which failures mean "the store cannot
serve now" (503 + Retry-After), as opposed to a bug.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis.asyncio as aioredis
import redis.exceptions as rexc
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from silentauth.errors import ConfigError, StoreUnavailable

_UNAVAILABLE = (rexc.ConnectionError, rexc.TimeoutError, rexc.ReadOnlyError, OSError, rexc.SlotNotCoveredError)
_TRANSIENT_ERRORS = (rexc.OutOfMemoryError, rexc.MasterDownError, rexc.TryAgainError, rexc.ClusterDownError,
                     rexc.AskError)
_TRANSIENT_REPLIES = {"MISCONF", "NOREPLICAS", "BUSY", "CLUSTERDOWN", "TRYAGAIN"}
POOL_SIZE = 100  # connections per instance (per node on a cluster); more callers queue for one
CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}


def _raised_in_redis_py(exc: BaseException) -> bool:
    """Whether ``exc`` came from inside the redis package (not from this store)."""
    tb = exc.__traceback__
    last = None
    while tb is not None:
        last, tb = tb, tb.tb_next
    return last is not None and f"{os.sep}redis{os.sep}" in last.tb_frame.f_code.co_filename


def _startup_nodes(url: str) -> tuple[str, list[ClusterNode]]:
    """``redis+cluster://a:1,b:2/``: the URL with its first host, and the others as nodes."""
    parts = urlsplit(url)
    auth, _, hosts = parts.netloc.rpartition("@")
    first, *others = hosts.split(",")
    nodes = []
    for other in others:
        host, _, port = other.rpartition(":")
        if not host or not port.isdigit():
            raise ConfigError("DATABASE_URL", f"cluster node {other!r}: use host:port")
        nodes.append(ClusterNode(host, int(port)))
    netloc = f"{auth}@{first}" if auth else first
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment)), nodes


def split_url(url: str) -> tuple[str, bool, int]:
    """(URL for redis-py, cluster?, wait_replicas) from a ``DATABASE_URL``."""
    parts = urlsplit(url)
    cluster = parts.scheme in CLUSTER_SCHEMES
    query = parse_qsl(parts.query, keep_blank_values=True)
    raw = [v for k, v in query if k == "wait_replicas"]
    if raw and (len(raw) > 1 or not raw[0].isdigit() or int(raw[0]) > 16):
        raise ConfigError("DATABASE_URL", "wait_replicas must be one integer from 0 to 16")
    wait = int(raw[0]) if raw else 0
    rest = urlencode([(k, v) for k, v in query if k != "wait_replicas"])
    scheme = CLUSTER_SCHEMES.get(parts.scheme, parts.scheme)
    return urlunsplit((scheme, parts.netloc, parts.path, rest, parts.fragment)), cluster, wait


def connect(url: str, cluster: bool, timeout: float) -> Any:
    """A redis-py asyncio client (``RedisCluster`` for a cluster), not connected yet."""
    common: dict[str, Any] = {
        "decode_responses": True,
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        # One immediate retry on a fresh connection (a cluster also refreshes
        # its slot map first): enough to ride over a restart or a finished
        # failover, short enough to fail fast while a shard has no master.
        "retry": Retry(NoBackoff(), 1),
    }
    if cluster:
        # Several nodes may be named (host:port,host:port): a new instance can
        # start while the first one named is down.
        first, others = _startup_nodes(url)
        return RedisCluster.from_url(
            first, startup_nodes=others or None, max_connections=POOL_SIZE,
            require_full_coverage=False, **common,
        )  # fmt: skip
    # A blocking pool: past max_connections, calls wait their turn (up to the
    # timeout) instead of failing at once, which read as a store outage (503)
    # on a healthy Redis as soon as 101 requests were in flight.
    pool = aioredis.BlockingConnectionPool.from_url(
        url, max_connections=POOL_SIZE, timeout=timeout, health_check_interval=30, **common
    )
    return aioredis.Redis(connection_pool=pool)


def unavailable(exc: Exception) -> StoreUnavailable | None:
    """The outage ``exc`` stands for, or ``None`` if it is not one (then re-raise it)."""
    if isinstance(exc, _UNAVAILABLE):
        return StoreUnavailable(f"Redis: {type(exc).__name__}")
    if isinstance(exc, rexc.RedisClusterException):
        # Only the base type: "cannot be connected", no node answers. Its
        # subclasses (cross-slot, bad pipeline) are bugs.
        return StoreUnavailable(f"Redis Cluster: {exc}") if type(exc) is rexc.RedisClusterException else None
    if isinstance(exc, AttributeError):
        # redis-py's cluster client closes every connection when a slot has
        # no master (CLUSTERDOWN) while other calls are still using them;
        # those fail inside redis-py on a socket writer it already dropped.
        return StoreUnavailable("Redis: connection closed under a call") if _raised_in_redis_py(exc) else None
    if isinstance(exc, RuntimeError):
        # uvloop: Redis died while a connection was being opened ("unable to
        # perform operation on <TCPTransport closed=True>; the handler is closed").
        if "handler is closed" in str(exc) or "closed=True" in str(exc):
            return StoreUnavailable("Redis: connection closed while opening")
        return None
    if isinstance(exc, rexc.ResponseError):
        # Out of memory, failing persistence, a failover in progress: the
        # server is there but cannot serve writes now. Retry later (503).
        code = str(exc).split(" ", 1)[0]
        if isinstance(exc, _TRANSIENT_ERRORS) or code in _TRANSIENT_REPLIES:
            return StoreUnavailable(f"Redis: {type(exc).__name__} {code}")
    return None
