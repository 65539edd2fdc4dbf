"""Store fixtures: one ``store`` fixture parametrized over SQLite, PostgreSQL, Redis and Redis Cluster.

PostgreSQL and Redis are throwaway servers started once per test session from
the local binaries (see :mod:`tests.stores.servers`); each test gets a fresh
database (PostgreSQL), a flushed logical database (Redis) or a flushed cluster
(Redis Cluster: 3 masters, 3 replicas, started once). Missing binaries
skip, or fail under ``SILENTAUTH_REQUIRE_SERVICES=1``.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from silentauth.core.ports import Store
from silentauth.stores.base import open_store
from tests.conftest import need_binary
from tests.stores.servers import (
    PostgresServer,
    PostgresStandby,
    RedisClusterServers,
    RedisServer,
    find_binary,
    standby_pair,
)

STORES = ["sqlite", "postgres", "redis", "redis-cluster"]
_db_names = itertools.count(1)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    need_binary("initdb", find_binary("initdb") or "initdb")
    need_binary("postgres", find_binary("postgres") or "postgres")
    server = PostgresServer()
    try:
        server.init()
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    need_binary("redis-server")
    server = RedisServer()
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisClusterServers]:
    need_binary("redis-server")
    need_binary("redis-cli")
    cluster = RedisClusterServers()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


def store_url(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL naming an empty store of ``kind``."""
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    if kind == "postgres":
        pg: PostgresServer = request.getfixturevalue("postgres_server")
        return pg.create_database(f"t{next(_db_names)}")
    if kind == "redis-cluster":
        rc: RedisClusterServers = request.getfixturevalue("redis_cluster")
        rc.flush()
        return rc.url
    rs: RedisServer = request.getfixturevalue("redis_server")
    import redis

    with redis.Redis(port=rs.port, db=1) as client:
        client.flushdb()
    return rs.url(db=1)


@pytest.fixture(params=STORES)
def store_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store_url_of(request: pytest.FixtureRequest, tmp_path: Path, store_kind: str) -> str:
    return store_url(store_kind, request, tmp_path)


@pytest.fixture
async def store(store_url_of: str) -> AsyncIterator[Store]:
    """An opened, empty store of every kind."""
    s = open_store(store_url_of)
    await s.open()
    try:
        yield s
    finally:
        await s.close()


@pytest.fixture
def postgres_standby_pair() -> Iterator[tuple[PostgresServer, PostgresStandby]]:
    """A primary and its synchronous streaming standby (throwaway, fsync off), per test:
    tests that use it kill the primary."""
    with standby_pair(PostgresServer, PostgresStandby) as pair:
        yield pair
