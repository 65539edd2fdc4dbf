"""Two real ``silentauth serve`` processes on one PostgreSQL, Redis or Redis Cluster store.

The processes share nothing but the store and the secret, as instances behind
a load balancer do: rotation must not fork across them, a logout on one must
reach the other within 2 s, a key rotated from the CLI must be picked up by
both, and a store outage must read as 503 + Retry-After (never 500, never an
``invalid_grant`` that would log users out) until the store is back.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from silentauth.errors import StoreUnavailable
from silentauth.stores.base import open_store
from tests.conftest import metric_value, need_binary
from tests.stores.servers import (
    PostgresServer,
    RedisClusterServers,
    RedisServer,
    ServiceProcess,
    cli,
    find_binary,
    service_env,
)

pytestmark = pytest.mark.anyio

REVOCATION_DEADLINE = 2.0  # seconds until every instance sharing the store refuses a revoked session
KEY_RELOAD = 5.0  # server.runtime.KEY_RELOAD_SECONDS
KEY_PREPUBLISH = 8.0


@dataclass
class Cluster:
    """Two service processes and the database server they share."""

    kind: str
    a: ServiceProcess
    b: ServiceProcess
    db: PostgresServer | RedisServer | RedisClusterServers
    env: dict[str, str]

    def restart_store(self) -> None:
        self.db.start()


@pytest.fixture(scope="module", params=["postgres", "redis", "redis-cluster"])
def cluster(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    """Instances A and B on one fresh store of the kind, user alice added by the CLI."""
    kind = str(request.param)
    db: PostgresServer | RedisServer | RedisClusterServers
    if kind == "postgres":
        need_binary("initdb", find_binary("initdb") or "initdb")
        need_binary("postgres", find_binary("postgres") or "postgres")
        db = PostgresServer()
    elif kind == "redis":
        need_binary("redis-server")
        db = RedisServer()
    else:
        need_binary("redis-server")
        need_binary("redis-cli")
        db = RedisClusterServers()
    a = b = None
    try:
        if isinstance(db, PostgresServer):
            db.init()
            db.start()
            url = db.create_database("multi")
        elif isinstance(db, RedisServer):
            db.start()
            url = db.url(0)
        else:
            db.start()
            url = db.url
        # A long grace: a rotation committed just before the store died, whose
        # answer was lost, must still converge when the client retries after
        # the restart (the outage test's recovery may take several seconds).
        # A key is published KEY_PREPUBLISH before it signs; shortened here, but
        # longer than the periodic key reload, so both instances publish it first.
        env = service_env(url, reuse_grace="30", key_prepublish=str(int(KEY_PREPUBLISH)))
        added = cli(env, "users", "add", "alice", "--password-stdin", stdin="secret-password\n")
        assert added.returncode == 0, added.stderr
        a, b = ServiceProcess(env), ServiceProcess(env)
        a.start()
        b.start()
        a.wait_ready()
        b.wait_ready()
        yield Cluster(kind, a, b, db, env)
    finally:
        for proc in (a, b):
            if proc is not None:
                err = proc.stop()
                assert "Traceback" not in err, err[-3000:]
        db.stop()


def metric(url: str, name: str, **labels: str) -> float:
    return metric_value(httpx.get(f"{url}/metrics").text, name, **labels)


def total(cluster: Cluster, name: str, **labels: str) -> float:
    return metric(cluster.a.url, name, **labels) + metric(cluster.b.url, name, **labels)


async def login(client: httpx.AsyncClient, url: str) -> httpx.Response:
    return await client.post(
        f"{url}/auth/token", data={"grant_type": "password", "username": "alice", "password": "secret-password"}
    )


async def refresh(client: httpx.AsyncClient, url: str, token: str) -> httpx.Response:
    return await client.post(f"{url}/auth/token", data={"grant_type": "refresh_token", "refresh_token": token})


async def me(client: httpx.AsyncClient, url: str, access: str) -> int:
    r = await client.get(f"{url}/api/me", headers={"Authorization": f"Bearer {access}"})
    return r.status_code


def kid_of(jwt: str) -> str:
    head = jwt.split(".")[0]
    return str(json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))["kid"])


async def test_racing_refreshes_on_two_instances_converge_on_one_lineage(cluster: Cluster) -> None:
    rotated = total(cluster, "silentauth_refresh_total", outcome="rotated")
    grace = total(cluster, "silentauth_refresh_total", outcome="grace")
    async with httpx.AsyncClient(timeout=10) as client:
        first = (await login(client, cluster.a.url)).json()
        urls = [cluster.a.url, cluster.b.url] * 10
        answers = await asyncio.gather(*(refresh(client, u, first["refresh_token"]) for u in urls))
        assert [r.status_code for r in answers] == [200] * 20
        successors = {r.json()["refresh_token"] for r in answers}
        assert len(successors) == 1  # one lineage, whichever instance answered
        assert total(cluster, "silentauth_refresh_total", outcome="rotated") - rotated == 1
        assert total(cluster, "silentauth_refresh_total", outcome="grace") - grace == 19
        # The lineage goes on, from either instance.
        nxt = await refresh(client, cluster.b.url, successors.pop())
        assert nxt.status_code == 200
        assert total(cluster, "silentauth_refresh_total", outcome="rotated") - rotated == 2


async def test_logout_on_one_instance_rejects_the_token_on_the_other_within_2s(cluster: Cluster) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        grant = (await login(client, cluster.b.url)).json()
        access = grant["access_token"]
        assert await me(client, cluster.b.url, access) == 200
        r = await client.post(f"{cluster.a.url}/auth/logout", headers={"Authorization": f"Bearer {access}"})
        assert r.status_code == 204
        t0 = time.monotonic()
        assert await me(client, cluster.a.url, access) == 401  # at once where it happened
        while await me(client, cluster.b.url, access) != 401:
            assert time.monotonic() - t0 < REVOCATION_DEADLINE, "revocation did not reach instance B"
            await asyncio.sleep(0.02)
        # The refresh token died with the session, on both instances.
        for url in (cluster.a.url, cluster.b.url):
            dead = await refresh(client, url, grant["refresh_token"])
            assert dead.status_code == 400 and dead.json()["error"] == "invalid_grant"


async def test_key_rotated_from_the_cli_is_published_on_both_instances_before_either_signs(
    cluster: Cluster,
) -> None:
    done = await asyncio.to_thread(cli, cluster.env, "keys", "rotate")
    assert done.returncode == 0, done.stderr
    rotated_at = time.monotonic()
    new_kid = done.stdout.split()[3]
    deadline = rotated_at + KEY_PREPUBLISH + KEY_RELOAD + 5
    published: dict[str, float] = {}
    tokens: dict[str, str] = {}
    async with httpx.AsyncClient(timeout=10) as client:
        while len(tokens) < 2:
            assert time.monotonic() < deadline, f"new key {new_kid}: published {published}, signing {sorted(tokens)}"
            for url in (cluster.a.url, cluster.b.url):
                jwks = (await client.get(f"{url}/.well-known/jwks.json")).json()
                if new_kid in {k["kid"] for k in jwks["keys"]}:
                    published.setdefault(url, time.monotonic())
                if url not in tokens:
                    access = (await login(client, url)).json()["access_token"]
                    if kid_of(access) == new_kid:
                        tokens[url] = access
                        # Whoever signs with it first, both already publish it.
                        assert set(published) == {cluster.a.url, cluster.b.url}, published
            await asyncio.sleep(0.2)
        assert max(published.values()) - rotated_at < KEY_PREPUBLISH
        # Each instance verifies what the other signed with the new key.
        assert await me(client, cluster.b.url, tokens[cluster.a.url]) == 200
        assert await me(client, cluster.a.url, tokens[cluster.b.url]) == 200


async def test_store_raises_unavailable_while_down_and_works_at_once_when_back(cluster: Cluster) -> None:
    store = open_store(cluster.env["SILENTAUTH_DATABASE_URL"])
    await store.open()
    try:
        assert await store.get_user("alice") is not None
        await asyncio.to_thread(cluster.db.kill)
        # PostgreSQL: long enough that psycopg_pool's uncapped reconnect
        # backoff (attempts at about 1, 3, 7, 15 s) would still be waiting
        # when the server returns. Redis clients reconnect per command.
        outage = 10.0 if cluster.kind == "postgres" else 2.0
        t0 = time.monotonic()
        while time.monotonic() - t0 < outage:
            with pytest.raises(StoreUnavailable):  # never a "not found"
                await store.get_user("alice")
            await asyncio.sleep(0.3)
        await asyncio.to_thread(cluster.restart_store)
        t1 = time.monotonic()
        while True:
            try:
                user = await store.get_user("alice")
                break
            except StoreUnavailable:
                assert time.monotonic() - t1 < 1.5, "the store did not reconnect by itself"
                await asyncio.sleep(0.05)
        assert user is not None and user.username == "alice"
    finally:
        await store.close()


@dataclass
class Worker:
    """One client refreshing its own session against one instance, in a loop."""

    url: str
    token: str
    statuses: list[tuple[int, str, bool]]  # (status, error code, has Retry-After)

    async def run(self, client: httpx.AsyncClient, stop: asyncio.Event) -> None:
        for _ in range(10_000):  # bounded; the test stops it long before
            if stop.is_set():
                return
            try:
                r = await refresh(client, self.url, self.token)
            except httpx.TimeoutException:
                self.statuses.append((0, "timeout", False))
                continue
            error = r.json().get("error", "") if r.status_code != 200 else ""
            self.statuses.append((r.status_code, error, "retry-after" in r.headers))
            if r.status_code == 200:
                self.token = r.json()["refresh_token"]
            await asyncio.sleep(0.02)


async def test_store_outage_answers_503_and_service_resumes_after_restart(cluster: Cluster) -> None:
    stop = asyncio.Event()
    async with httpx.AsyncClient(timeout=15) as client:
        urls = [cluster.a.url, cluster.b.url] * 3
        grants = [(await login(client, u)).json() for u in urls]
        workers = [Worker(u, g["refresh_token"], []) for u, g in zip(urls, grants, strict=True)]
        tasks = [asyncio.create_task(w.run(client, stop)) for w in workers]
        await asyncio.sleep(0.5)
        await asyncio.to_thread(cluster.db.kill)
        await asyncio.sleep(2.5)
        # Down: login answers 503 + Retry-After; access tokens keep verifying.
        for url in (cluster.a.url, cluster.b.url):
            down = await login(client, url)
            assert down.status_code == 503, down.text
            assert down.json()["error"] == "temporarily_unavailable"
            assert int(down.headers["retry-after"]) >= 1
            assert await me(client, url, grants[0]["access_token"]) == 200
        t_restart = time.monotonic()
        await asyncio.to_thread(cluster.restart_store)
        # Back: both instances serve logins again by themselves.
        pending = {cluster.a.url, cluster.b.url}
        while pending:
            assert time.monotonic() - t_restart < 30, f"no recovery on {pending}"
            for url in list(pending):
                if (await login(client, url)).status_code == 200:
                    pending.discard(url)
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)  # every worker gets a turn after recovery
        stop.set()
        await asyncio.gather(*tasks)
        # No session was lost: each worker's current token still refreshes.
        for w in workers:
            final = await refresh(client, w.url, w.token)
            assert final.status_code == 200, final.text
    statuses = [s for w in workers for s in w.statuses]
    assert {code for code, _, _ in statuses} <= {200, 503}, sorted(set(statuses))
    assert any(code == 503 for code, _, _ in statuses)
    assert all(retry for code, _, retry in statuses if code == 503)
    assert {err for code, err, _ in statuses if code == 503} == {"temporarily_unavailable"}
