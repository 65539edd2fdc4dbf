"""Start-up against a real PostgreSQL and Redis: missing role or database, and readiness.

The reasons the server gives (``role "…" does not exist``) must reach the
operator in the one line ``serve`` prints; ``/readyz`` must follow the store.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from silentauth.server.app import create_app
from tests.conftest import FAST_PASSWORDS, make_settings, need_binary
from tests.stores.servers import PostgresServer, RedisServer
from tests.test_serve import ISSUER, assert_one_line, failed_start


def test_postgres_role_missing_is_one_line_with_the_reason(postgres_server: PostgresServer, tmp_path: Path) -> None:
    url = f"postgresql://nobody@127.0.0.1:{postgres_server.port}/postgres"
    result = failed_start(tmp_path, database_url=url, issuer=ISSUER)
    assert_one_line(result, 3, "cannot reach PostgreSQL", 'role "nobody" does not exist')


def test_postgres_database_missing_is_one_line_with_the_reason(postgres_server: PostgresServer, tmp_path: Path) -> None:
    url = f"postgresql://postgres@127.0.0.1:{postgres_server.port}/no_such_db"
    result = failed_start(tmp_path, database_url=url, issuer=ISSUER)
    assert_one_line(result, 3, "cannot reach PostgreSQL", 'database "no_such_db" does not exist')


@pytest.mark.anyio
async def test_readyz_fails_while_the_store_is_unreachable_and_healthz_stays_up(tmp_path: Path) -> None:
    need_binary("redis-server")
    redis = RedisServer()
    redis.start()
    try:
        settings = make_settings(tmp_path, database_url=redis.url(db=2), issuer=ISSUER)
        app = create_app(settings, passwords=FAST_PASSWORDS, background=False)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                assert (await client.get("/readyz")).json() == {"status": "ready"}
                redis.kill()
                r = await client.get("/readyz")
                assert r.status_code == 503 and "store unreachable" in r.json()["reason"]
                assert (await client.get("/healthz")).status_code == 200
                redis.start()
                assert (await client.get("/readyz")).status_code == 200
    finally:
        redis.stop()
