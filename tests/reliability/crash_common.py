"""PostgreSQL and Redis as a crash test needs them: real durability, kill -9, direct inspection.

:mod:`tests.stores.servers` starts throwaway servers tuned for speed
(PostgreSQL ``fsync=off``, Redis ``appendfsync no``) and stops PostgreSQL with
SIGQUIT. A crash test must assume no more than production gives, so the
subclasses here keep the realistic settings and die by SIGKILL:

- PostgreSQL: its defaults (``fsync``, ``full_page_writes`` and
  ``synchronous_commit`` on). The postmaster *and every backend* are killed,
  as the OOM killer or ``docker kill`` would. A commit is durable before it is
  acknowledged, even against power loss.
- Redis: ``appendonly yes`` + ``appendfsync everysec`` by default. Usually
  Redis write()s the AOF before it answers, so a killed *process* loses
  nothing it acknowledged. But while a background fsync is slow (a busy
  disk), everysec postpones that write for up to 2 s and answers anyway:
  a kill -9 then loses acknowledged rotations (and logouts). A client whose
  rotation was lost holds a token ahead of the store and gets invalid_grant
  (seen once here: 13 of 200 sessions). ``appendfsync always`` answers only
  after the write (and fsync): nothing acknowledged is lost, even on power
  loss. The tests that kill Redis itself must say which they assume.

Each store object also reads what the service left behind, with its own
connection: per-session counters, and a list of integrity problems (empty
means whole). :class:`Traffic` is the client side: sessions refreshing in a
loop through the crash, every answer recorded.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from silentauth.core.ports import SessionRecord
from silentauth.stores.redis_layout import RedisLayout
from tests.reliability.test_crash_consistency import Client, refresh
from tests.stores.servers import (
    PostgresServer,
    PostgresStandby,
    RedisServer,
    _wait_port,
    find_binary,
)

Sessions = dict[str, tuple[int, float | None]]  # session id -> (counter, revoked_at)
SESSION_FIELDS = {f.name for f in dataclasses.fields(SessionRecord)}
_names = itertools.count(1)


def _live_members(pgid: int) -> list[int]:
    """Processes of the group that still run (orphaned zombies hold no shared memory)."""
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            alive.append(int(stat.parent.name))
    return alive


class CrashPostgres(PostgresServer):
    """PostgreSQL with default durability, in a process group of its own."""

    kind = "postgres"
    durability = ("max_connections=100",)  # PostgreSQL's defaults: fsync and full pages on
    own_process_group = True

    def kill9(self) -> None:
        """SIGKILL the postmaster and all its backends at once; crash recovery on restart."""
        assert self.proc is not None
        pgid = self.proc.pid
        os.killpg(pgid, signal.SIGKILL)
        self.proc.wait(30)
        self.proc = None
        deadline = time.monotonic() + 10
        while _live_members(pgid):  # a live orphan would keep the shared memory attached
            assert time.monotonic() < deadline, "postgres backends outlived SIGKILL"
            time.sleep(0.02)

    def fresh(self) -> str:
        """An empty database; its URL."""
        return self.create_database(f"crash{next(_names)}")

    def sessions(self, url: str) -> Sessions:
        import psycopg

        with psycopg.connect(url) as conn:
            return {r[0]: (r[1], r[2]) for r in conn.execute("SELECT id, counter, revoked_at FROM sessions")}

    def problems(self, url: str) -> list[str]:
        """amcheck over the sessions heap and primary key, then each row's own invariants."""
        import psycopg

        found: list[str] = []
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS amcheck")
            for row in conn.execute("SELECT blkno, offnum, msg FROM verify_heapam('sessions')"):
                found.append(f"heap {row}")
            # heapallindexed: every heap tuple has its index entry (raises if not).
            conn.execute("SELECT bt_index_check('sessions_pkey'::regclass, true)")
            bad = conn.execute(
                "SELECT s.id FROM sessions s LEFT JOIN users u ON u.id = s.user_id "
                "WHERE u.id IS NULL OR s.counter < 0 OR s.idle_expires_at > s.expires_at "
                "OR s.rotated_at < s.created_at OR s.last_used_at < s.created_at "
                "OR (s.revoked_at IS NULL) <> (s.revoked_reason IS NULL) OR length(s.id) = 0"
            ).fetchall()
            found += [f"row {r[0]} breaks an invariant" for r in bad]
        return found


class CrashStandby(PostgresStandby, CrashPostgres):
    """A streaming standby with the crash settings of :class:`CrashPostgres` (same
    ``max_connections``, which a hot standby requires) and its inspection methods."""


@dataclass
class CrashRedis(RedisServer):
    """Redis with ``appendonly yes`` and ``appendfsync`` as given; ``kill`` is SIGKILL."""

    appendfsync: str = "everysec"
    kind = "redis"
    prefix = "silentauth:"

    def start(self) -> None:
        binary = find_binary("redis-server")
        if binary is None:
            raise RuntimeError("redis-server not found")
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.root),
             "--save", "", "--appendonly", "yes", "--appendfsync", self.appendfsync,
             "--maxmemory-policy", "noeviction", "--daemonize", "no", "--loglevel", "warning",
             "--protected-mode", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        _wait_port(self.port, self.proc, "redis-server")
        self._wait_ready()

    def kill9(self) -> None:
        self.kill()  # RedisServer.kill is SIGKILL

    def fresh(self) -> str:
        """An empty logical database; its URL."""
        import redis

        db = next(_names) % 16
        with redis.Redis(port=self.port, db=db) as client:
            client.flushdb()
        return self.url(db)

    def _hashes(self, url: str) -> dict[str, dict[str, str]]:
        import redis

        with redis.Redis.from_url(url, decode_responses=True) as client:
            keys = sorted(client.scan_iter(match=f"{self.prefix}session:*", count=1000))
            pipe = client.pipeline(transaction=False)
            for key in keys:
                pipe.hgetall(key)
            # session:{s<group>}:<id> (see RedisLayout)
            return {k.split("}:", 1)[1]: h for k, h in zip(keys, pipe.execute(), strict=True)}

    def sessions(self, url: str) -> Sessions:
        return {
            sid: (int(h["counter"]), float(h["revoked_at"]) if h.get("revoked_at") else None)
            for sid, h in self._hashes(url).items()
        }

    def problems(self, url: str) -> list[str]:
        """Every session hash has every field, each parseable, and a TTL; the indexes name it."""
        import redis

        found: list[str] = []
        hashes = self._hashes(url)
        L = RedisLayout(self.prefix)
        with redis.Redis.from_url(url, decode_responses=True) as client:
            for sid, h in hashes.items():
                if set(h) != SESSION_FIELDS:
                    found.append(f"{sid}: fields {sorted(set(h) ^ SESSION_FIELDS)}")
                    continue
                try:
                    int(h["counter"])
                    for f in ("auth_time", "created_at", "rotated_at", "idle_expires_at", "expires_at"):
                        float(h[f])
                except ValueError as exc:
                    found.append(f"{sid}: {exc}")
                if client.ttl(L.session(sid)) <= 0:
                    found.append(f"{sid}: no TTL")
                if client.zscore(L.session_ends(L.group(sid)), sid) is None:
                    found.append(f"{sid}: missing from session-ends")
                if not client.sismember(L.user_sessions(h["user_id"]), sid):
                    found.append(f"{sid}: missing from user-sessions")
        return found


CrashStore = CrashPostgres | CrashRedis


# httpx clients the storm is spread over: one pool of 200 connections is
# itself the bottleneck here (35-150 refreshes/s measured, against 400-900
# with the load spread over 18-20 clients).
GROUPS = 20

Seen = tuple[float, str, int, str, bool]  # (monotonic time, user, status, error, has Retry-After)


class Traffic:
    """Clients refreshing in a loop, and every answer they saw.

    A client treats a 503 as the service asks (waits Retry-After, at most
    ``pause``, and retries the same token); a dropped connection means the
    service is gone: the client stops and keeps its token. Any other answer
    would end the user's session and is kept in ``Client.errors``.
    """

    def __init__(self, url: str, clients: list[Client], pause: float) -> None:
        self.url, self.clients, self.pause = url, clients, pause
        self.seen: list[Seen] = []
        self.ready = asyncio.Event()  # set once the clients exist and the first requests go out
        self.t_kill = float("inf")  # when the service was killed, if it was

    async def run(self, stop: asyncio.Event) -> None:
        # verify=False: plain HTTP on loopback, and loading the CA bundle for
        # each client costs tens of ms of CPU (seconds under load).
        https = [httpx.AsyncClient(base_url=self.url, timeout=10, verify=False) for _ in range(GROUPS)]
        self.ready.set()
        try:
            await asyncio.gather(*(self._loop(c, https[i % GROUPS], stop) for i, c in enumerate(self.clients)))
        finally:
            for http in https:
                await http.aclose()

    async def _loop(self, c: Client, http: httpx.AsyncClient, stop: asyncio.Event) -> None:
        for _ in range(100_000):  # bounded; stop ends it long before
            if stop.is_set():
                return
            try:
                r = await refresh(http, c.token)
            except httpx.TransportError as exc:
                self.seen.append((time.monotonic(), c.user, 0, type(exc).__name__, False))
                return
            error = "" if r.status_code == 200 else str(r.json().get("error", ""))
            self.seen.append((time.monotonic(), c.user, r.status_code, error, "retry-after" in r.headers))
            if r.status_code == 200:
                c.token = r.json()["refresh_token"]
                c.refreshes += 1
            elif r.status_code == 503:
                await asyncio.sleep(min(float(r.headers.get("retry-after", 1)), self.pause))
            else:
                c.errors.append(r.text)
                return

    def answers(self, until: float = float("inf")) -> set[tuple[int, str, bool]]:
        return {(status, error, retry) for t, _, status, error, retry in self.seen if t < until}

    def count(self, status: int) -> int:
        return sum(1 for s in self.seen if s[2] == status)

    def served_after(self, t0: float) -> set[str]:
        """Users who got a 200 after ``t0``."""
        return {user for t, user, status, _, _ in self.seen if t > t0 and status == 200}
