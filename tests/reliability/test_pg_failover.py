"""kill -9 the PostgreSQL primary under a refresh storm, promote its hot standby.

The service is given both servers in one libpq multi-host URL with
``target_session_attrs=read-write``: it connects to whichever host accepts
writes, so after ``pg_ctl promote`` it must find the new primary by itself,
with no restart and no configuration change. The standby is synchronous
(``synchronous_commit = on``, see
:meth:`tests.stores.servers.PostgresStandby.make_synchronous`): a rotation
is acknowledged only once its WAL is on the standby's disk, so promotion
loses none of them.

Checked as in :mod:`tests.reliability.test_crash_stores` for a single
server: while no primary exists the service answers 503 + Retry-After, never
``invalid_grant`` or 500; every client-held counter equals the new primary's
or is one behind it (rotation committed, answer lost); no session forked
(no reuse detected once every client retries the token it holds).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import make_settings, seed_users
from tests.reliability.crash_common import CrashPostgres, CrashStandby
from tests.reliability.test_crash_consistency import CLIENTS, Client, login_all, recover
from tests.reliability.test_crash_stores import (
    OK,
    UNAVAILABLE,
    check_one_lineage,
    check_sessions,
    metric,
    stop_service,
    storm_through_store_crash,
)
from tests.stores.servers import (
    ISSUER,
    SECRET_KEY,
    ServiceProcess,
    service_env,
    standby_pair,
)

pytestmark = pytest.mark.slow

DB = "failover"


@pytest.fixture
def pg_pair() -> Iterator[tuple[CrashPostgres, CrashStandby]]:
    """A running primary and its synchronous streaming standby (production durability)."""
    with standby_pair(CrashPostgres, CrashStandby) as pair:
        yield pair


def test_kill_9_primary_mid_storm_service_follows_the_promoted_standby(
    pg_pair: tuple[CrashPostgres, CrashStandby], tmp_path: Path
) -> None:
    primary, standby = pg_pair
    primary.create_database(DB)  # synchronous: on the standby too once this returns
    url = (
        f"postgresql://postgres@127.0.0.1:{primary.port},127.0.0.1:{standby.port}/{DB}"
        "?target_session_attrs=read-write"
    )
    standby_url = f"postgresql://postgres@127.0.0.1:{standby.port}/{DB}"
    users = {f"user{i:03d}": "pw" for i in range(CLIENTS + 1)}
    seed_users(make_settings(tmp_path, database_url=url, secret_key=SECRET_KEY, issuer=ISSUER), users)
    service = ServiceProcess(service_env(url, reuse_grace="60", access_ttl="300"))
    service.start()
    service.wait_ready()
    everyone = [Client(u) for u in users]
    clients, probe = everyone[:-1], everyone[-1]
    try:
        asyncio.run(login_all(service.url, everyone))
        t0 = time.monotonic()
        traffic, times = asyncio.run(
            storm_through_store_crash(primary, service.url, clients, probe, restart=standby.promote)
        )
        assert all(not c.errors for c in everyone), [c.errors for c in everyone if c.errors][:3]
        # Only 200, or 503 temporarily_unavailable with Retry-After.
        assert traffic.answers() <= {OK, UNAVAILABLE}, traffic.answers()
        assert traffic.count(503) > 0, "the loss of the primary went unnoticed"
        assert times["before"] > CLIENTS and times["served"] > 0, (times, traffic.count(200))
        # The old primary is dead: what the store holds now is the promoted standby's.
        ahead = check_sessions(standby, standby_url, everyone)

        asyncio.run(recover(service.url, everyone))
        check_one_lineage(standby, standby_url, everyone)
        assert metric(service, "reuse_detected") == metric(service, "invalid") == metric(service, "expired") == 0
        print(
            f"\npostgres failover: {int(times['before'])} refreshes before the kill; primary down "
            f"{times['down']:.1f} s before promotion, promotion {times['restart']:.2f} s; service writing "
            f"to the new primary {times['back']:.2f} s after it, {times['served']:.0f}/{CLIENTS} clients "
            f"served again within {times['within']:.2f} s; {traffic.count(503)} answers 503 + Retry-After, "
            f"0 other errors; {ahead} sessions one ahead (committed, answer lost); "
            f"{time.monotonic() - t0:.1f} s in all"
        )
    finally:
        stop_service(service)
