"""kill -9 a Redis Cluster master under a 200-client refresh storm.

The cluster has 3 masters with 2 replicas each, ``appendfsync always``, and
the service asks for ``wait_replicas=1``: a write counts as done only once a
replica holds it. A master is killed without warning; its replicas notice
after ``cluster-node-timeout`` (1 s here) and elect one of them. Meanwhile
every request that needs that shard answers 503 + Retry-After (the other two
shards keep serving); then the service finds the new master by itself. The
second replica follows the new master, so writes are acknowledged again
without anyone restarting the dead node.

Afterwards no session is forked (no reuse detected, no invalid grant) and no
acknowledged rotation is lost: every client's last token (answered 200)
still refreshes, and the store is exactly where each client's token says.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from silentauth.stores.redis import RedisStore
from tests.conftest import make_settings, metric_value, need_binary, seed_users
from tests.reliability.crash_common import Traffic
from tests.reliability.test_crash_consistency import (
    CLIENTS,
    Client,
    login_all,
    recover,
    where,
)
from tests.stores.servers import (
    ISSUER,
    SECRET_KEY,
    RedisClusterServers,
    ServiceProcess,
    service_env,
)

pytestmark = pytest.mark.slow

STORM = 2.0  # seconds of refresh storm before the master is killed
BOUND = 30.0  # any wait for recovery, at most
OK, UNAVAILABLE = (200, "", False), (503, "temporarily_unavailable", True)


@pytest.fixture
def cluster() -> Iterator[RedisClusterServers]:
    need_binary("redis-server")
    need_binary("redis-cli")
    servers = RedisClusterServers(replicas=2)
    try:
        servers.start()
        yield servers
    finally:
        servers.stop()


async def counters(url: str, clients: list[Client]) -> dict[str, tuple[int, float | None]]:
    store = RedisStore(url)
    await store.open()
    try:
        out = {}
        for c in clients:
            sid, _ = where(c.token)
            s = await store.get_session(sid)
            assert s is not None, f"session {sid} lost"
            out[sid] = (s.counter, s.revoked_at)
        return out
    finally:
        await store.close()


async def storm_through_failover(
    cluster: RedisClusterServers, service_url: str, clients: list[Client], probe: Client, url: str
) -> tuple[Traffic, dict[str, float]]:
    stop = asyncio.Event()
    traffic, probing = Traffic(service_url, clients, pause=1.0), Traffic(service_url, [probe], pause=0.05)
    tasks = [asyncio.create_task(t.run(stop)) for t in (traffic, probing)]
    await asyncio.gather(traffic.ready.wait(), probing.ready.wait())
    await asyncio.sleep(STORM)
    store = RedisStore(url)
    victim = cluster.master_of(store.layout.session(where(probe.token)[0]))  # the probe's shard
    t_kill = time.monotonic()
    await asyncio.to_thread(victim.kill)
    # Promoted: every slot served again, the surviving replica attached to the new master.
    await asyncio.to_thread(cluster.wait_healthy, BOUND)
    t_promoted = time.monotonic()
    deadline = t_promoted + BOUND
    while not probing.served_after(t_promoted):
        assert not probe.errors and not any(c.errors for c in clients), "a session ended"
        assert time.monotonic() < deadline, f"the service did not resume within {BOUND} s"
        await asyncio.sleep(0.02)
    # The probe's shard died: it saw 503s, and then a 200 again.
    t_down = min(t for t, _, status, _, _ in probing.seen if t > t_kill and status == 503)
    t_back = min(t for t, _, status, _, _ in probing.seen if t > t_down and status == 200)
    while len(traffic.served_after(t_back)) < len(clients) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    served = len(traffic.served_after(t_back))
    stop.set()
    _, pending = await asyncio.wait(tasks, timeout=5)
    for task in pending:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    traffic.seen += probing.seen
    first_503 = min((t for t, _, status, _, _ in traffic.seen if status == 503), default=t_kill)
    return traffic, {
        "promoted": t_promoted - t_kill, "back": t_back - t_kill, "served": served,
        "first_503": first_503 - t_kill, "t_kill": t_kill, "down": t_down - t_kill, "victim": victim.port,
    }  # fmt: skip


def test_kill_9_a_cluster_master_mid_storm_answers_503_until_promotion_and_loses_no_rotation(
    cluster: RedisClusterServers, tmp_path: Path
) -> None:
    url = cluster.url + "?wait_replicas=1"
    users = {f"user{i:03d}": "pw" for i in range(CLIENTS + 1)}
    seed_users(make_settings(tmp_path, database_url=url, secret_key=SECRET_KEY, issuer=ISSUER), users)
    service = ServiceProcess(service_env(url, reuse_grace="60", access_ttl="300"))
    service.start()
    service.wait_ready()
    everyone = [Client(u) for u in users]
    clients, probe = everyone[:-1], everyone[-1]
    try:
        asyncio.run(login_all(service.url, everyone))
        traffic, times = asyncio.run(storm_through_failover(cluster, service.url, clients, probe, url))
        assert all(not c.errors for c in everyone), [c.errors for c in everyone if c.errors][:3]
        # Only 200, or 503 temporarily_unavailable with Retry-After: no 500, no
        # invalid_grant (a logged-out user), no dropped connection.
        assert traffic.answers() <= {OK, UNAVAILABLE}, traffic.answers()
        assert traffic.count(503) > 0, "the master's death went unnoticed"
        assert traffic.answers(until=times["t_kill"]) <= {OK}, "503s while the cluster was healthy"
        # No acknowledged rotation lost: the store is level with each client's
        # token or one ahead (a rotation whose answer was a 503 or lost).
        # Read by a new client whose URL names the dead master first: it finds the cluster.
        others = [n.port for n in cluster.nodes if n.port != times["victim"]]
        dead_first = "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in [int(times["victim"]), *others])
        rows = asyncio.run(counters(dead_first, everyone))
        for c in everyone:
            sid, counter = where(c.token)
            assert rows[sid][1] is None and rows[sid][0] in (counter, counter + 1), (sid, rows[sid], counter)
        asyncio.run(recover(service.url, everyone))
        rows = asyncio.run(counters(url, everyone))
        assert all(rows[where(c.token)[0]] == (where(c.token)[1], None) for c in everyone)
        text = httpx.get(f"{service.url}/metrics").text
        for outcome in ("reuse_detected", "invalid", "expired"):
            assert metric_value(text, "silentauth_refresh_total", outcome=outcome) == 0, outcome
        print(
            f"\nRedis Cluster master kill -9: probe's shard answered 503 from "
            f"{times['down']:.2f} s, a 200 again {times['back']:.1f} s after the kill (replica synced "
            f"{times['promoted']:.1f} s after); {times['served']:.0f}/{CLIENTS} clients served since; "
            f"{traffic.count(503)} answers 503 + Retry-After, {traffic.count(200)} 200, no other answer"
        )
    finally:
        err = service.stop()
        assert "Traceback" not in err, err[-3000:]
