"""The shared store on Redis (redis-py asyncio; Lua scripts for the atomic steps).

Key layout (``P`` = ``silentauth:``; times are epoch seconds as decimal strings,
``None`` is stored as ``""``; TTLs are counted from the caller's ``now``):

==================================  =======  ==========================================
key                                 type     contents, lifetime
==================================  =======  ==========================================
``P user:{username}``               hash     id, username, password_hash, created_at
``P users``                         set      user names (for ``users list``)
``P client:{client_id}``            hash     client_id, secret_hash, name, created_at
``P clients``                       set      client ids (for ``clients list``)
``P keys``                          hash     kid -> JSON of the encrypted signing key
``P session:{id}``                  hash     every :class:`SessionRecord` field; expires
                                             ``retention`` after the session ends (idle,
                                             absolute, or revoked), so dead sessions
                                             evaporate even if nobody purges
``P user-sessions:{user_id}``       set      the user's session ids; expires with the
                                             longest possible session of the user
``P session-ends``                  zset     session id -> end time, for :meth:`purge`
``P revocations:seq``               string   the feed cursor (INCR)
``P revocations``                   zset     session id -> sequence number (the feed)
``P revocations:at``                zset     session id -> revocation time (for purge)
``P rl:{key}:{slot}``               string   rate-limit counter; expires with its window
==================================  =======  ==========================================

Users, clients, keys, the revocation counter and the indexes carry no TTL: users
and keys are few, and :meth:`RedisStore.purge` trims ``session-ends`` and the
feed. Give Redis persistence (``appendonly yes``): a restart without it
loses every user and session.

Rotation, revocation (counter increment plus feed append) and user creation
are Lua scripts, so each is atomic without WATCH retries, whichever instance
runs it. Scripts touch keys they compute from ``P``, so this store wants one
Redis (optionally behind Sentinel), not Redis Cluster.

Run it with ``maxmemory-policy noeviction``: under any evicting policy Redis
may drop a live session or a signing key to make room, which users would see
as being logged out. :meth:`RedisStore.open` logs a warning otherwise.

Failures: connection refused, lost or timed out, a server still loading its
data, out of memory, a read-only replica or a failover in progress become
:class:`~silentauth.errors.StoreUnavailable`.
The client retries a command once on a fresh connection, which covers a
server restart; every script is safe to repeat (a repeated rotation reads as a
grace hit, a repeated revocation as done, a repeated user insert as success).
If the server comes back empty (no persistence), the revocation cursor is
reset instead of waiting for the counter to climb past its old value.
"""

from __future__ import annotations

import base64
import json
import logging
import math
from collections.abc import Awaitable, Sequence
from typing import Any, TypeVar

import redis.asyncio as aioredis
import redis.exceptions as rexc
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

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
from silentauth.stores.redis_lua import SCRIPTS

T = TypeVar("T")
log = logging.getLogger("silentauth.stores.redis")

_FIELDS = [
    "id", "user_id", "username", "counter", "scope", "client_id", "auth_time", "created_at",
    "last_used_at", "rotated_at", "idle_expires_at", "expires_at", "user_agent", "ip",
    "revoked_at", "revoked_reason", "resources",
]  # fmt: skip
_FLOATS = {"auth_time", "created_at", "last_used_at", "rotated_at", "idle_expires_at", "expires_at"}
_UNAVAILABLE = (rexc.ConnectionError, rexc.TimeoutError, rexc.ReadOnlyError, OSError)
_TRANSIENT_ERRORS = (rexc.OutOfMemoryError, rexc.MasterDownError, rexc.TryAgainError)
_TRANSIENT_REPLIES = {"MISCONF", "NOREPLICAS", "BUSY"}
_PURGE_BATCH = 500
POOL_SIZE = 100  # connections per instance; more callers queue for one

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
    """:class:`~silentauth.core.ports.Store` on Redis, shared by many instances.

    ``retention`` is how long ended sessions stay readable (so a late refresh
    reads "expired", not "unknown") before Redis drops them by itself.
    """

    def __init__(
        self, url: str, *, prefix: str = "silentauth:", timeout: float = 2.0, retention: float = 86400.0
    ) -> None:
        self.url = url
        self.prefix = prefix
        self._retention = retention
        self._client: aioredis.Redis | None = None
        self._scripts: dict[str, Any] = {}
        self._timeout = timeout

    def _k(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    # -- lifecycle -----------------------------------------------------------

    async def open(self) -> None:
        if self._client is not None:
            return
        # A blocking pool: past max_connections, calls wait their turn (up to the
        # timeout) instead of failing at once, which read as a store outage (503)
        # on a healthy Redis as soon as 101 requests were in flight.
        pool = aioredis.BlockingConnectionPool.from_url(
            self.url,
            max_connections=POOL_SIZE,
            timeout=self._timeout,
            decode_responses=True,
            socket_timeout=self._timeout,
            socket_connect_timeout=self._timeout,
            # One immediate retry on a fresh connection: enough to ride over a
            # restart (stale pooled sockets), short enough to fail fast.
            retry=Retry(NoBackoff(), 1),
            health_check_interval=30,
        )
        client = aioredis.Redis(connection_pool=pool)
        self._scripts = {name: client.register_script(src) for name, src in SCRIPTS.items()}
        self._client = client
        try:
            await self._do(client.ping())
        except StoreUnavailable as exc:
            await self.close()
            # The client's own words ("Error 111 connecting to host:port. Connection refused."),
            # which name the address but never a password from the URL.
            cause = " ".join(str(exc.__cause__ or exc).split())
            raise StoreUnavailable(f"cannot reach Redis: {cause}") from exc
        await self._check_eviction_policy()

    async def _check_eviction_policy(self) -> None:
        try:
            policy = (await self._r().config_get("maxmemory-policy")).get("maxmemory-policy")
        except rexc.RedisError:  # CONFIG is often disabled on managed Redis
            return
        if policy not in (None, "noeviction"):
            log.warning(
                "Redis maxmemory-policy is %s: sessions and keys may be evicted; use noeviction",
                policy,
            )

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    def _r(self) -> aioredis.Redis:
        if self._client is None:
            raise StoreUnavailable("store is not open")
        return self._client

    async def _do(self, call: Awaitable[T]) -> T:
        try:
            return await call
        except _UNAVAILABLE as exc:
            raise StoreUnavailable(f"Redis: {type(exc).__name__}") from exc
        except RuntimeError as exc:
            # uvloop: Redis died while a connection was being opened ("unable to
            # perform operation on <TCPTransport closed=True>; the handler is closed").
            if "handler is closed" in str(exc) or "closed=True" in str(exc):
                raise StoreUnavailable("Redis: connection closed while opening") from exc
            raise
        except rexc.ResponseError as exc:
            # Out of memory, failing persistence, a failover in progress: the
            # server is there but cannot serve writes now. Retry later (503).
            code = str(exc).split(" ", 1)[0]
            if isinstance(exc, _TRANSIENT_ERRORS) or code in _TRANSIENT_REPLIES:
                raise StoreUnavailable(f"Redis: {type(exc).__name__} {code}") from exc
            raise

    async def _script(self, name: str, keys: list[str], args: list[Any]) -> Any:
        self._r()
        return await self._do(self._scripts[name](keys=keys, args=args))

    # -- users ---------------------------------------------------------------

    async def add_user(self, user: User) -> None:
        ok = await self._script(
            "add_user",
            [self._k("user", user.username), self._k("users")],
            [user.id, user.username, user.password_hash, _num(user.created_at)],
        )
        if not ok:
            raise AlreadyExists(f"user {user.username!r} exists")

    async def get_user(self, username: str) -> User | None:
        d = await self._do(self._r().hgetall(self._k("user", username)))
        return _user(d)

    async def list_users(self) -> list[User]:
        names = sorted(map(str, await self._do(self._r().smembers(self._k("users")))))
        pipe = self._r().pipeline(transaction=False)
        for name in names:
            pipe.hgetall(self._k("user", name))
        rows = await self._do(pipe.execute())
        return [u for u in map(_user, rows) if u is not None]

    async def remove_user(self, username: str) -> bool:
        n = await self._script("remove_user", [self._k("user", username), self._k("users")], [username])
        return bool(n)

    async def set_password(self, username: str, password_hash: str) -> bool:
        n = await self._script("set_password", [self._k("user", username)], [password_hash])
        return bool(n)

    # -- clients -------------------------------------------------------------

    async def add_client(self, client: ClientRecord) -> None:
        ok = await self._script(
            "add_client",
            [self._k("client", client.client_id), self._k("clients")],
            [client.client_id, client.secret_hash, client.name, _num(client.created_at)],
        )
        if not ok:
            raise AlreadyExists(f"client {client.client_id!r} exists")

    async def get_client(self, client_id: str) -> ClientRecord | None:
        return _client(await self._do(self._r().hgetall(self._k("client", client_id))))

    async def list_clients(self) -> list[ClientRecord]:
        ids = sorted(map(str, await self._do(self._r().smembers(self._k("clients")))))
        pipe = self._r().pipeline(transaction=False)
        for client_id in ids:
            pipe.hgetall(self._k("client", client_id))
        rows = await self._do(pipe.execute())
        return [c for c in map(_client, rows) if c is not None]

    async def remove_client(self, client_id: str) -> bool:
        n = await self._script(
            "remove_client", [self._k("client", client_id), self._k("clients")], [client_id]
        )
        return bool(n)

    # -- keys ----------------------------------------------------------------

    async def add_key(self, key: StoredKey) -> None:
        doc = {
            "kid": key.kid, "alg": key.alg, "public_jwk": key.public_jwk,
            "private_blob": base64.b64encode(key.private_blob).decode(),
            "created_at": key.created_at, "not_after": key.not_after,
        }  # fmt: skip
        await self._do(self._r().hsetnx(self._k("keys"), key.kid, json.dumps(doc)))

    async def list_keys(self) -> list[StoredKey]:
        docs = [json.loads(v) for v in (await self._do(self._r().hgetall(self._k("keys")))).values()]
        keys = [
            StoredKey(d["kid"], d["alg"], base64.b64decode(d["private_blob"]), d["public_jwk"],
                      float(d["created_at"]), float(d["not_after"]))
            for d in docs
        ]  # fmt: skip
        return sorted(keys, key=lambda k: k.created_at)

    # -- sessions ------------------------------------------------------------

    async def create_session(self, session: SessionRecord) -> None:
        now = session.last_used_at
        ends = min(session.idle_expires_at, session.expires_at)
        await self._script(
            "create_session",
            [self._k("session", session.id), self._k("user-sessions", session.user_id),
             self._k("session-ends")],
            [session.id, self._ttl(ends - now), self._ttl(session.expires_at - now), _num(ends),
             *_encode(session)],
        )  # fmt: skip

    def _ttl(self, seconds: float) -> int:
        return max(1, math.ceil(seconds + self._retention))

    async def get_session(self, session_id: str) -> SessionRecord | None:
        return _session(await self._do(self._r().hgetall(self._k("session", session_id))))

    def _rotate_call(
        self, session_id: str, counter: int, now: float, idle_expires_at: float
    ) -> tuple[list[str], list[Any]]:
        keys = [self._k("session", session_id), self._k("session-ends")]
        args = [str(counter), _num(now), _num(idle_expires_at), _num(self._retention), session_id]
        return keys, args

    async def rotate(
        self, session_id: str, counter: int, now: float, idle_expires_at: float
    ) -> RotateResult:
        keys, args = self._rotate_call(session_id, counter, now, idle_expires_at)
        swapped, row = await self._script("rotate", keys, args)
        return RotateResult(bool(swapped), _session(row))

    async def rotate_many(self, requests: Sequence[RotateRequest], now: float) -> list[RotateResult]:
        if len(requests) == 1:
            return await rotate_each(self, requests, now)
        # One round trip for the batch: the scripts run one after another on
        # one connection, each as atomic as a lone rotate().
        sha = self._scripts["rotate"].sha
        pipe = self._r().pipeline(transaction=False)
        for r in requests:
            keys, args = self._rotate_call(r.session_id, r.counter, now, r.idle_expires_at)
            pipe.evalsha(sha, len(keys), *keys, *args)
        try:
            replies = await self._do(pipe.execute())
        except rexc.NoScriptError:
            # A restarted Redis forgot the script, so no swap of the batch ran;
            # the one-by-one path loads it again.
            return await rotate_each(self, requests, now)
        return [RotateResult(bool(swapped), _session(row)) for swapped, row in replies]

    async def _revoke(self, session_id: str, user_id: str, reason: str, now: float) -> list[str]:
        ids = await self._script(
            "revoke",
            [self._k("revocations"), self._k("revocations:at"), self._k("revocations:seq"),
             self._k("session-ends"), self._k("user-sessions", user_id)],
            [self.prefix, _num(now), reason, str(self._ttl(0)), session_id],
        )  # fmt: skip
        return [str(i) for i in ids]

    async def revoke_session(self, session_id: str, reason: str, now: float) -> bool:
        return bool(await self._revoke(session_id, "", reason, now))

    async def revoke_user_sessions(self, user_id: str, reason: str, now: float) -> list[str]:
        return await self._revoke("", user_id, reason, now)

    async def list_sessions(self, user_id: str) -> list[SessionRecord]:
        ids = await self._do(self._r().smembers(self._k("user-sessions", user_id)))
        pipe = self._r().pipeline(transaction=False)
        for sid in ids:
            pipe.hgetall(self._k("session", str(sid)))
        rows = [s for s in map(_session, await self._do(pipe.execute())) if s is not None]
        return sorted(rows, key=lambda s: (s.created_at, s.id))

    async def revocations_since(self, cursor: int) -> tuple[list[str], int]:
        start, flat = await self._script(
            "since", [self._k("revocations"), self._k("revocations:seq")], [str(cursor)]
        )
        if not flat:
            return [], int(start)
        return [str(x) for x in flat[::2]], int(float(flat[-1]))

    async def purge(self, now: float, keep_revocations: float) -> int:
        horizon = _num(now - keep_revocations)
        total = 0
        for _ in range(10_000):  # bounded: each batch removes what it reads
            seen, n = await self._script(
                "purge_sessions", [self._k("session-ends")], [self.prefix, horizon, _PURGE_BATCH]
            )
            total += int(n)
            if int(seen) < _PURGE_BATCH:
                break
        await self._script("purge_feed", [self._k("revocations"), self._k("revocations:at")], [horizon])
        return total

    # -- rate limits -----------------------------------------------------------

    async def hit(self, key: str, window: int, now: float) -> int:
        slot = int(now // window)
        ttl = max(1, math.ceil((slot + 1) * window - now))
        return int(await self._script("hit", [self._k("rl", key, str(slot))], [ttl]))

    async def peek(self, key: str, window: int, now: float) -> int:
        raw = await self._do(self._r().get(self._k("rl", key, str(int(now // window)))))
        return int(raw) if raw else 0


def _user(d: Any) -> User | None:
    if not d:
        return None
    return User(d["id"], d["username"], d["password_hash"], float(d["created_at"]))


def _client(d: Any) -> ClientRecord | None:
    if not d:
        return None
    return ClientRecord(d["client_id"], d["secret_hash"], d["name"], float(d["created_at"]))
