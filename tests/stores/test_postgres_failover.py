"""PostgresStore given a libpq multi-host URL follows a promoted standby by itself.

The service-level scenario (kill -9 under a refresh storm) is in
``tests/reliability/test_pg_failover.py``; this is the store alone, fast:
while no server accepts writes every call raises ``StoreUnavailable`` (never
a wrong answer such as "no such session"), and once the standby is promoted
the same store object writes to it, with nothing acknowledged lost.
"""

from __future__ import annotations

import time

import pytest

from silentauth.errors import StoreUnavailable
from silentauth.stores.postgres import PostgresStore
from tests.stores.servers import PostgresServer, PostgresStandby
from tests.stores.test_conformance import IDLE, make_session

pytestmark = pytest.mark.anyio

RECOVERY_BOUND = 10.0  # seconds from promotion until the store writes again


async def test_multi_host_url_follows_the_promoted_standby(
    postgres_standby_pair: tuple[PostgresServer, PostgresStandby],
) -> None:
    primary, standby = postgres_standby_pair
    primary.create_database("failover")
    url = (
        f"postgresql://postgres@127.0.0.1:{primary.port},127.0.0.1:{standby.port}/failover"
        "?target_session_attrs=read-write"
    )
    store = PostgresStore(url, timeout=1.0)
    await store.open()
    try:
        s = make_session(now=time.time())
        await store.create_session(s)
        now = s.created_at + 1
        assert (await store.rotate(s.id, 0, now, now + IDLE)).swapped  # acknowledged: on both servers

        primary.kill()
        # The standby still runs but is read-only: target_session_attrs refuses it.
        with pytest.raises(StoreUnavailable):
            await store.get_session(s.id)
        with pytest.raises(StoreUnavailable):
            await store.rotate(s.id, 1, now + 1, now + 1 + IDLE)

        standby.promote()
        t0 = time.monotonic()
        while True:
            try:
                result = await store.rotate(s.id, 1, now + 2, now + 2 + IDLE)
                break
            except StoreUnavailable:
                assert time.monotonic() - t0 < RECOVERY_BOUND, "the store did not reach the new primary"
        # The acknowledged rotation survived the primary: counter 1 swapped to 2.
        assert result.swapped and result.session is not None and result.session.counter == 2
    finally:
        await store.close()
