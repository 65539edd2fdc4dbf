"""The per-user session limit holds under racing logins, on every store.

Several service instances (each its own thread, event loop, store connection
and app, as workers or hosts behind a load balancer are) start sessions for
one user at the same moment. Counting the live sessions and inserting the
new one must be one atomic step in the store; checked in the service, two
logins both find room and the limit is overfilled.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from pathlib import Path

import pytest

from silentauth.core.ports import Store
from silentauth.server.app import create_app
from silentauth.server.app_sessions import start_session
from silentauth.stores.base import open_store
from tests.conftest import FAST_PASSWORDS, make_settings
from tests.stores.test_conformance import T0, make_session

INSTANCES = 5
LOGINS_PER_INSTANCE = 10
LIMIT = 3


def racing_logins(url: str, tmp_path: Path, limit: int) -> list[str]:
    """INSTANCES apps on ``url`` each start LOGINS_PER_INSTANCE sessions of one user at once."""
    settings = make_settings(
        tmp_path, database_url=url, max_sessions_per_user=limit, issuer="https://auth.example.com"
    )
    ready = threading.Barrier(INSTANCES, timeout=30)
    started: list[str] = []
    errors: list[BaseException] = []

    def instance() -> None:
        async def run() -> None:
            app = create_app(settings, passwords=FAST_PASSWORDS, background=False)
            async with app.router.lifespan_context(app):
                rt = app.state.runtime
                await asyncio.to_thread(ready.wait)
                done = await asyncio.gather(*(start_session(rt, "u-race") for _ in range(LOGINS_PER_INSTANCE)))
                started.extend(s.session_id for s in done)

        try:
            asyncio.run(run())
        except BaseException as exc:  # reported by the test thread
            errors.append(exc)

    threads = [threading.Thread(target=instance) for _ in range(INSTANCES)]
    # Switch threads every few microseconds instead of every 5 ms, so the
    # instances interleave inside a login even where the store never waits
    # (SQLite answers without yielding to the event loop).
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    finally:
        sys.setswitchinterval(interval)
    assert not errors, errors
    return started


@pytest.mark.parametrize("limit", [LIMIT, 1])
def test_racing_logins_never_overfill_the_limit(store_url_of: str, tmp_path: Path, limit: int) -> None:
    started = racing_logins(store_url_of, tmp_path, limit)
    assert len(started) == INSTANCES * LOGINS_PER_INSTANCE

    async def check() -> None:
        store = open_store(store_url_of)
        await store.open()
        try:
            rows = await store.list_sessions("u-race")
            live = [s for s in rows if s.revoked_at is None]
            assert len(rows) == len(started) and len(live) == limit, [s.revoked_reason for s in rows]
            assert {s.revoked_reason for s in rows if s.revoked_at is not None} == {"policy"}
            # Every ended session is announced, once, to the resource servers.
            fed, _ = await store.revocations_since(0)
            assert sorted(fed) == sorted(s.id for s in rows if s.revoked_at is not None)
        finally:
            await store.close()

    asyncio.run(check())


@pytest.mark.anyio
async def test_the_limit_ends_the_oldest_live_sessions_only(store: Store) -> None:
    a, b, c = (make_session("u-1", now=T0 + i) for i in range(3))
    for s in (a, b, c):
        assert await store.create_session(s) == []
    assert await store.revoke_session(b.id, "logout", T0 + 3)
    gone = make_session("u-1", now=T0 + 3.5, idle=0.1)  # idle-expired before d starts
    other = make_session("u-2", now=T0 + 3.6)
    for s in (gone, other):
        await store.create_session(s)
    d = make_session("u-1", now=T0 + 4)
    # Live: a, c (b revoked, gone expired); room for d within 2 means ending a.
    assert await store.create_session(d, limit=2) == [a.id]
    now = T0 + 4
    live = [s.id for s in await store.list_sessions("u-1") if s.is_live(now)]
    assert live == [c.id, d.id]
    ended = await store.get_session(a.id)
    assert ended is not None and ended.revoked_reason == "policy" and ended.revoked_at == now
    assert (await store.get_session(other.id)) == other
    e = make_session("u-1", now=T0 + 5)
    assert sorted(await store.create_session(e, limit=1)) == sorted([c.id, d.id])
    fed, _ = await store.revocations_since(0)
    assert set(fed) == {a.id, b.id, c.id, d.id}
