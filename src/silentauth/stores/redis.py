"""The shared store on Redis or Redis Cluster (redis-py asyncio; Lua scripts for the atomic steps).

``redis://`` (or ``rediss://``) names one Redis, optionally behind Sentinel;
``redis+cluster://host:port`` (or ``rediss+cluster://``) names any node of a
Redis Cluster, from which the client learns the others; name several
(``host:port,host:port``) so that an instance can start while one is down. The key layout, the
same on both, is documented in :mod:`silentauth.stores.redis_layout`: keys of
one session share a hash slot, so a rotation is one script on one shard, and
no script touches two slots.

Rotation, user creation and the mark of a revocation are Lua scripts, so each
is atomic without WATCH retries, whichever instance runs it. A revocation
appends to the feed first and marks the session second (two slots; see the
layout for what a crash between the two leaves).

Run it with ``maxmemory-policy noeviction``: under any evicting policy Redis
may drop a live session or a signing key to make room, which users would see
as being logged out. :meth:`RedisStore.open` logs a warning otherwise. Give
Redis persistence (``appendonly yes``, ``appendfsync always``): a restart
without it loses every user and session.

Durability and failover. Redis replicates asynchronously: a master that dies
may take writes it already acknowledged with it, and the replica promoted in
its place never saw them. With ``?wait_replicas=N`` in the URL every write
(rotation, login, revocation, user, key) is followed, on the same connection,
by ``WAIT N`` (up to the store timeout) and counts as done only if N replicas
acknowledged it; otherwise the caller gets :class:`StoreUnavailable` (503) and
its retry lands in the rotation's grace window. So a rotation answered 200 is
on a replica when the master dies, and the promoted replica continues the
lineage. What Redis cannot promise: ``WAIT`` is not a consensus; the replica
has the write in memory, not necessarily on disk, and a failover that
promotes a replica which had not received it (another replica, or a manual
``CLUSTER FAILOVER TAKEOVER``) can still lose it; a write answered 503 may
or may not have happened. Redis Cluster also stops serving a shard's slots
from the moment its master dies until the replica is promoted
(``cluster-node-timeout`` plus the election): those requests answer 503 +
``Retry-After`` and the client retries by itself.

Failures: connection refused, lost or timed out, a server still loading its
data, out of memory, a read-only replica, a cluster slot without a master or
a failover in progress become :class:`~silentauth.errors.StoreUnavailable`.
The client retries a command once on a fresh connection (after refreshing
the cluster's slot map), which covers a server restart; every script is safe
to repeat (a repeated rotation reads as a grace hit, a repeated revocation as
done, a repeated user insert as success). If the server comes back empty (no
persistence), the revocation cursor is reset instead of waiting for the
counter to climb past its old value.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import math
from collections import defaultdict
from collections.abc import Awaitable, Sequence
from typing import Any, TypeVar

import redis.exceptions as rexc

from silentauth.core.ports import (
    ClientRecord,
    RotateRequest,
    RotateResult,
    SessionRecord,
    StoredKey,
    User,
)
from silentauth.errors import AlreadyExists, StoreUnavailable
from silentauth.stores.base import rotate_each
from silentauth.stores.redis_client import POOL_SIZE, connect, split_url, unavailable
from silentauth.stores.redis_layout import GROUPS, RedisLayout
from silentauth.stores.redis_lua import SCRIPTS
from silentauth.stores.redis_wait import replicated

T = TypeVar("T")
log = logging.getLogger("silentauth.stores.redis")

_FIELDS = [
    "id", "user_id", "username", "counter", "scope", "client_id", "auth_time", "created_at",
    "last_used_at", "rotated_at", "idle_expires_at", "expires_at", "user_agent", "ip",
    "revoked_at", "revoked_reason", "resources", "claims", "rotation_key",
]  # fmt: skip
_FLOATS = {"auth_time", "created_at", "last_used_at", "rotated_at", "idle_expires_at", "expires_at"}
_PURGE_BATCH = 500
def _num(value: float) -> str:
    # repr round-trips a float exactly; Lua compares the parsed doubles.
    return repr(float(value))


def _session(flat: Any) -> SessionRecord | None:
    """A record from HGETALL (a dict) or a script's flat field/value list."""
    d: dict[str, str] = flat if isinstance(flat, dict) else dict(zip(flat[::2], flat[1::2], strict=True))
    if not d:
        return None
    values: dict[str, Any] = {}
    for f in _FIELDS:
        raw = d.get(f, "")
        if f == "counter":
            values[f] = int(raw)
        elif f in _FLOATS:
            values[f] = float(raw)
        elif f == "revoked_at":
            values[f] = float(raw) if raw else None
        elif f == "revoked_reason":
            values[f] = raw or None
        else:
            values[f] = raw
    return SessionRecord(**values)


def _encode(session: SessionRecord) -> list[str]:
    out: list[str] = []
    for f in _FIELDS:
        v = getattr(session, f)
        out += [f, "" if v is None else _num(v) if f in _FLOATS or f == "revoked_at" else str(v)]
    return out


class RedisStore:
    """:class:`~silentauth.core.ports.Store` on Redis or Redis Cluster, shared by many instances.

    ``retention`` is how long ended sessions stay readable (so a late refresh
    reads "expired", not "unknown") before Redis drops them by itself.
    """

    def __init__(
        self, url: str, *, prefix: str = "silentauth:", timeout: float = 2.0, retention: float = 86400.0
    ) -> None:
        self.url = url
        self._redis_url, self.cluster, self.wait_replicas = split_url(url)
        self.prefix = prefix
        self.layout = RedisLayout(prefix)
        self._retention = retention
        self._client: Any = None  # aioredis.Redis or RedisCluster
        self._scripts: dict[str, Any] = {}
        self._timeout = timeout
        # A cluster node's pool fails at once when all its connections are busy;
        # this queues callers instead, as the single-server blocking pool does.
        self._slots = asyncio.Semaphore(POOL_SIZE)

    # -- lifecycle -----------------------------------------------------------

    def _connect(self) -> Any:
        return connect(self._redis_url, self.cluster, self._timeout)

    async def open(self) -> None:
        if self._client is not None:
            return
        client = self._connect()
        self._scripts = {name: client.register_script(src) for name, src in SCRIPTS.items()}
        self._client = client
        try:
            await self._do(client.initialize() if self.cluster else client.ping())
        except (StoreUnavailable, rexc.RedisClusterException) as exc:
            await self.close()
            # The client's own words ("Error 111 connecting to host:port. Connection refused."),
            # which name the address but never a password from the URL.
            cause = " ".join(str(exc.__cause__ or exc).split())
            raise StoreUnavailable(f"cannot reach Redis: {cause}") from exc
        await self._check_eviction_policy()

    async def _check_eviction_policy(self) -> None:
        try:
            reply = await self._r().config_get("maxmemory-policy")
        except (rexc.RedisError, rexc.RedisClusterException):  # CONFIG is often disabled on managed Redis
            return
        # A cluster answers per node ({node: {...}}) unless all nodes agree.
        replies = reply.values() if reply and all(isinstance(v, dict) for v in reply.values()) else [reply]
        for policy in {r.get("maxmemory-policy") for r in replies}:
            if policy not in (None, "noeviction"):
                log.warning(
                    "Redis maxmemory-policy is %s: sessions and keys may be evicted; use noeviction",
                    policy,
                )

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    def _r(self) -> Any:
        if self._client is None:
            raise StoreUnavailable("store is not open")
        return self._client

    async def _do(self, call: Awaitable[T]) -> T:
        try:
            try:
                await asyncio.wait_for(self._slots.acquire(), self._timeout)
            except TimeoutError:
                raise StoreUnavailable("Redis: every connection busy") from None
            try:
                return await call
            finally:
                self._slots.release()
        except Exception as exc:
            mapped = unavailable(exc)
            if mapped is None:
                raise
            raise mapped from exc
        finally:
            if not isinstance(call, asyncio.Future) and hasattr(call, "close"):
                call.close()  # never awaited when no connection came free: no warning

    async def _script(self, name: str, keys: list[str], args: list[Any]) -> Any:
        """Run a script that only reads, or writes nothing that must survive a failover."""
        self._r()
        return await self._do(self._scripts[name](keys=keys, args=args))

    async def _write(self, name: str, keys: list[str], args: list[Any]) -> Any:
        """A script that writes: acknowledged by ``wait_replicas`` replicas if asked."""
        if not self.wait_replicas:
            return await self._script(name, keys, args)
        return await self._do(
            replicated(self._r(), self.cluster, self._scripts[name], keys, args, self.wait_replicas, self._timeout)
        )

    async def _many(self, name: str, calls: Sequence[tuple[list[str], list[Any]]]) -> list[Any]:
        """One script for each (keys, args), pipelined (per node on a cluster)."""
        if not calls:
            return []
        script = self._scripts[name]
        pipe = self._r().pipeline(transaction=False)
        for keys, args in calls:
            pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
        try:
            return list(await self._do(pipe.execute()))
        except rexc.NoScriptError:
            # A restarted server forgot the script: load it (everywhere) once.
            await self._do(self._r().script_load(script.script))
            return list(await self._do(self._many_again(name, calls)))

    async def _many_again(self, name: str, calls: Sequence[tuple[list[str], list[Any]]]) -> list[Any]:
        return [await self._scripts[name](keys=keys, args=args) for keys, args in calls]

    # -- users ---------------------------------------------------------------

    async def add_user(self, user: User) -> None:
        L = self.layout
        ok = await self._write(
            "add_user", [L.user(user.username), L.users],
            [user.id, user.username, user.password_hash, _num(user.created_at)],
        )  # fmt: skip
        if not ok:
            raise AlreadyExists(f"user {user.username!r} exists")

    async def get_user(self, username: str) -> User | None:
        d = await self._do(self._r().hgetall(self.layout.user(username)))
        return _user(d)

    async def list_users(self) -> list[User]:
        names = sorted(map(str, await self._do(self._r().smembers(self.layout.users))))
        pipe = self._r().pipeline(transaction=False)
        for name in names:
            pipe.hgetall(self.layout.user(name))
        rows = await self._do(pipe.execute())
        return [u for u in map(_user, rows) if u is not None]

    async def remove_user(self, username: str) -> bool:
        n = await self._write("remove_user", [self.layout.user(username), self.layout.users], [username])
        return bool(n)

    async def set_password(self, username: str, password_hash: str) -> bool:
        n = await self._write("set_password", [self.layout.user(username)], [password_hash])
        return bool(n)

    # -- clients -------------------------------------------------------------

    async def add_client(self, client: ClientRecord) -> None:
        ok = await self._write(
            "add_client",
            [self.layout.client(client.client_id), self.layout.clients],
            [client.client_id, client.secret_hash, client.name, _num(client.created_at)],
        )
        if not ok:
            raise AlreadyExists(f"client {client.client_id!r} exists")

    async def get_client(self, client_id: str) -> ClientRecord | None:
        return _client(await self._do(self._r().hgetall(self.layout.client(client_id))))

    async def list_clients(self) -> list[ClientRecord]:
        ids = sorted(map(str, await self._do(self._r().smembers(self.layout.clients))))
        pipe = self._r().pipeline(transaction=False)
        for client_id in ids:
            pipe.hgetall(self.layout.client(client_id))
        rows = await self._do(pipe.execute())
        return [c for c in map(_client, rows) if c is not None]

    async def remove_client(self, client_id: str) -> bool:
        n = await self._write(
            "remove_client", [self.layout.client(client_id), self.layout.clients], [client_id]
        )
        return bool(n)

    # -- keys ----------------------------------------------------------------

    async def add_key(self, key: StoredKey) -> None:
        doc = {
            "kid": key.kid, "alg": key.alg, "public_jwk": key.public_jwk,
            "private_blob": base64.b64encode(key.private_blob).decode(),
            "created_at": key.created_at, "not_after": key.not_after,
        }  # fmt: skip
        await self._write("add_key", [self.layout.keys], [key.kid, json.dumps(doc)])

    async def list_keys(self) -> list[StoredKey]:
        docs = [json.loads(v) for v in (await self._do(self._r().hgetall(self.layout.keys))).values()]
        keys = [
            StoredKey(d["kid"], d["alg"], base64.b64decode(d["private_blob"]), d["public_jwk"],
                      float(d["created_at"]), float(d["not_after"]))
            for d in docs
        ]  # fmt: skip
        return sorted(keys, key=lambda k: k.created_at)

    # -- sessions ------------------------------------------------------------

    async def create_session(self, session: SessionRecord, limit: int = 0) -> list[str]:
        now = session.created_at
        ends = min(session.idle_expires_at, session.expires_at)
        L = self.layout
        group = L.group(session.id)
        # The session first, then its admission (see the layout): an evicted
        # racer's session always exists by the time it is revoked.
        await self._write(
            "create_session", [L.session(session.id), L.session_ends(group)],
            [session.id, self._ttl(ends - now), _num(ends), *_encode(session)],
        )  # fmt: skip
        dead, live = await self._seen(session.user_id, now) if limit > 0 else ([], [])
        ended = await self._write(
            "admit_session", [L.user_sessions(session.user_id), L.user_live(session.user_id)],
            [session.id, self._ttl(session.expires_at - now), _num(session.created_at), str(max(0, limit)),
             str(len(dead)), *dead, *live],
        )  # fmt: skip
        ids = [str(i) for i in ended]
        return await self._revoke(ids, "policy", now) if ids else []

    async def _seen(self, user_id: str, now: float) -> tuple[list[str], list[str]]:
        """The user's sessions read now: ids known ended, and (start time, id) of the live ones."""
        ids = sorted(map(str, await self._do(self._r().smembers(self.layout.user_sessions(user_id)))))
        if not ids:
            return [], []
        pipe = self._r().pipeline(transaction=False)
        for sid in ids:
            pipe.hgetall(self.layout.session(sid))
        dead: list[str] = []
        live: list[str] = []
        for sid, row in zip(ids, await self._do(pipe.execute()), strict=True):
            s = _session(row)
            if s is None or not s.is_live(now):
                # Missing: purged or expired out of Redis (a login writes the
                # session before it indexes it, so never one just starting).
                dead.append(sid)
            else:
                live += [_num(s.created_at), sid]
        return dead, live

    def _ttl(self, seconds: float) -> int:
        return max(1, math.ceil(seconds + self._retention))

    async def get_session(self, session_id: str) -> SessionRecord | None:
        return _session(await self._do(self._r().hgetall(self.layout.session(session_id))))

    def _rotate_call(
        self, session_id: str, counter: int, now: float, idle_expires_at: float, key_hash: str = ""
    ) -> tuple[list[str], list[Any]]:
        L = self.layout
        keys = [L.session(session_id), L.session_ends(L.group(session_id))]
        args = [str(counter), _num(now), _num(idle_expires_at), _num(self._retention), session_id, key_hash]
        return keys, args

    async def rotate(
        self, session_id: str, counter: int, now: float, idle_expires_at: float, key_hash: str = ""
    ) -> RotateResult:
        keys, args = self._rotate_call(session_id, counter, now, idle_expires_at, key_hash)
        swapped, row = await self._write("rotate", keys, args)
        return RotateResult(bool(swapped), _session(row))

    async def rotate_many(self, requests: Sequence[RotateRequest], now: float) -> list[RotateResult]:
        if len(requests) == 1 or self.wait_replicas:
            # With replica acknowledgement each swap waits on its own shard.
            return await rotate_each(self, requests, now)
        # One round trip for the batch (per node on a cluster): the scripts run
        # one after another on one connection, each as atomic as a lone rotate().
        calls = [self._rotate_call(r.session_id, r.counter, now, r.idle_expires_at, r.key_hash) for r in requests]
        sha = self._scripts["rotate"].sha
        pipe = self._r().pipeline(transaction=False)
        for keys, args in calls:
            pipe.execute_command("EVALSHA", sha, len(keys), *keys, *args)
        try:
            replies = await self._do(pipe.execute())
        except rexc.NoScriptError:
            # A restarted Redis forgot the script, so no swap of the batch ran;
            # the one-by-one path loads it again.
            return await rotate_each(self, requests, now)
        return [RotateResult(bool(swapped), _session(row)) for swapped, row in replies]

    async def _revoke(self, ids: list[str], reason: str, now: float) -> list[str]:
        """Feed, then mark, the sessions of ``ids`` that exist and are not revoked yet."""
        L = self.layout
        pipe = self._r().pipeline(transaction=False)
        for sid in ids:
            pipe.hget(L.session(sid), "revoked_at")
        states = await self._do(pipe.execute())
        todo = [sid for sid, revoked in zip(ids, states, strict=True) if revoked == ""]
        if not todo:
            return []
        await self._write("feed", L.feed, [_num(now), *todo])
        by_group: dict[int, list[str]] = defaultdict(list)
        for sid in todo:
            by_group[L.group(sid)].append(sid)
        done: list[str] = []
        for group, members in sorted(by_group.items()):
            marked = await self._write(
                "revoke", [L.session_ends(group)],
                [L.session_prefix(group), _num(now), reason, str(self._ttl(0)), *members],
            )  # fmt: skip
            done += [str(i) for i in marked]
        return done

    async def revoke_session(self, session_id: str, reason: str, now: float) -> bool:
        return bool(await self._revoke([session_id], reason, now))

    async def revoke_user_sessions(self, user_id: str, reason: str, now: float) -> list[str]:
        ids = sorted(map(str, await self._do(self._r().smembers(self.layout.user_sessions(user_id)))))
        return await self._revoke(ids, reason, now)

    async def list_sessions(self, user_id: str) -> list[SessionRecord]:
        ids = await self._do(self._r().smembers(self.layout.user_sessions(user_id)))
        pipe = self._r().pipeline(transaction=False)
        for sid in ids:
            pipe.hgetall(self.layout.session(str(sid)))
        rows = [s for s in map(_session, await self._do(pipe.execute())) if s is not None]
        return sorted(rows, key=lambda s: (s.created_at, s.id))

    async def revocations_since(self, cursor: int) -> tuple[list[str], int]:
        entries, _, seq = self.layout.feed
        start, flat = await self._script("since", [entries, seq], [str(cursor)])
        if not flat:
            return [], int(start)
        return [str(x) for x in flat[::2]], int(float(flat[-1]))

    async def purge(self, now: float, keep_revocations: float) -> int:
        horizon = _num(now - keep_revocations)
        L = self.layout
        total = 0
        groups = list(range(GROUPS))
        for _ in range(10_000):  # bounded: each batch removes what it reads
            if not groups:
                break
            calls = [([L.session_ends(g)], [L.session_prefix(g), horizon, _PURGE_BATCH]) for g in groups]
            replies = await self._many("purge_sessions", calls)
            unindex = self._r().pipeline(transaction=False)
            for _seen, n, *pairs in replies:
                total += int(n)
                for uid, sid in zip(pairs[::2], pairs[1::2], strict=True):
                    unindex.srem(L.user_sessions(str(uid)), str(sid))
                    unindex.zrem(L.user_live(str(uid)), str(sid))
            await self._do(unindex.execute())
            groups = [g for g, (seen, *_) in zip(groups, replies, strict=True) if int(seen) >= _PURGE_BATCH]
        entries, at, _ = L.feed
        await self._write("purge_feed", [entries, at], [horizon])
        return total

    # -- rate limits -----------------------------------------------------------

    async def hit(self, key: str, window: int, now: float) -> int:
        slot = int(now // window)
        ttl = max(1, math.ceil((slot + 1) * window - now))
        return int(await self._script("hit", [self.layout.rate(key, slot)], [ttl]))

    async def peek(self, key: str, window: int, now: float) -> int:
        raw = await self._do(self._r().get(self.layout.rate(key, int(now // window))))
        return int(raw) if raw else 0


def _user(d: Any) -> User | None:
    if not d:
        return None
    return User(d["id"], d["username"], d["password_hash"], float(d["created_at"]))


def _client(d: Any) -> ClientRecord | None:
    if not d:
        return None
    return ClientRecord(d["client_id"], d["secret_hash"], d["name"], float(d["created_at"]))
