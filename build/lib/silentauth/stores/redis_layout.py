"""Where :class:`~silentauth.stores.redis.RedisStore` keeps what: every key name, in one place.

The layout is the same on one Redis and on Redis Cluster. Redis Cluster runs a
script only if every key it touches hashes to one slot; a key's slot is
computed from its *hash tag*, the text between the first ``{`` and the next
``}`` (see "Hash tags" in the Redis Cluster specification). So every key that
one script touches carries the same tag, and what spans sessions is split so
that no script needs two tags.

Key layout (``P`` = the prefix, ``silentauth:`` by default; ``<x>`` is a
variable part; ``{...}`` is a literal hash tag; times are epoch seconds as
decimal strings, ``None`` is stored as ``""``; TTLs count from the caller's
``now``):

======================================  ======  =========================================
key                                     type    contents, lifetime
======================================  ======  =========================================
``P user:{users}:<username>``           hash    id, username, password_hash, created_at
``P users:{users}``                     set     user names (for ``users list``)
``P client:{clients}:<client_id>``      hash    client_id, secret_hash, name, created_at
``P clients:{clients}``                 set     client ids (for ``clients list``)
``P keys:{keys}``                       hash    kid -> JSON of the encrypted signing key
``P session:{s<g>}:<id>``               hash    every ``SessionRecord`` field; expires
                                                ``retention`` after the session ends
                                                (idle, absolute or revoked)
``P session-ends:{s<g>}``               zset    id -> end time, for ``purge``: one per
                                                group ``g``, beside its sessions
``P user-sessions:{u:<user_id>}``       set     the user's session ids; expires with the
                                                longest possible session of the user
``P revocations:{feed}``                zset    session id -> sequence number (the feed)
``P revocations:at:{feed}``             zset    session id -> revocation time (purge)
``P revocations:seq:{feed}``            string  the feed cursor (INCR)
``P rl:{rl:<key>}:<window>``            string  rate-limit counter; expires with its window
======================================  ======  =========================================

A session's *group* ``g`` is ``crc32(id) mod GROUPS``: its record and its
group's purge index share the tag ``{s<g>}``, so a rotation (compare-and-swap
plus moving the idle deadline in the index) is one script on one shard.
``GROUPS`` (1024) bounds how many shards the sessions spread over and is
fixed for good: another value would look for existing sessions in other
groups. A purge walks the groups; a revocation of many sessions runs one
script per group it touches.

The revocation feed is one ordered log under ``{feed}`` so that its cursor
stays one small integer (an HTTP verifier passes it as ``since``); every
instance reads it about once a second and it grows only by logouts, so one
shard carries it easily. A revocation therefore takes two scripts on two
slots: the feed entry first, then the mark on the session. A crash between
the two leaves the session announced as revoked (every verifier refuses its
access tokens) but still refreshable until the revocation is repeated (a
client retries a logout that answered 503). The user's session index is
written before the session itself, so an index never misses a live session
("log out everywhere" cannot skip one); an entry whose session was never
written is skipped by every reader and dropped by :meth:`purge`.

Users and their name set share ``{users}`` (one script adds both), clients
and theirs ``{clients}``; keys are one hash. Users, clients, keys, the feed and the purge indexes carry no TTL: users and
keys are few, and ``purge`` trims the rest.
"""

from __future__ import annotations

import zlib

GROUPS = 1024


class RedisLayout:
    """Key names under one prefix (which must not contain a hash tag itself)."""

    def __init__(self, prefix: str) -> None:
        if "{" in prefix or "}" in prefix:
            raise ValueError(f"Redis key prefix {prefix!r} must not contain '{{' or '}}' (hash tags)")
        self.prefix = prefix

    def user(self, username: str) -> str:
        """A user's hash."""
        return f"{self.prefix}user:{{users}}:{username}"

    @property
    def users(self) -> str:
        """The set of user names."""
        return f"{self.prefix}users:{{users}}"

    def client(self, client_id: str) -> str:
        """A registered client's hash."""
        return f"{self.prefix}client:{{clients}}:{client_id}"

    @property
    def clients(self) -> str:
        """The set of client ids."""
        return f"{self.prefix}clients:{{clients}}"

    @property
    def keys(self) -> str:
        """The signing keys' hash."""
        return f"{self.prefix}keys:{{keys}}"

    @staticmethod
    def group(session_id: str) -> int:
        """The session's group: which purge index, and which slot, it shares."""
        return zlib.crc32(session_id.encode("utf-8", "surrogatepass")) % GROUPS

    def session_prefix(self, group: int) -> str:
        """What a session key of ``group`` starts with (scripts append the id)."""
        return f"{self.prefix}session:{{s{group}}}:"

    def session(self, session_id: str) -> str:
        """A session's hash."""
        return self.session_prefix(self.group(session_id)) + session_id

    def session_ends(self, group: int) -> str:
        """The purge index of one group."""
        return f"{self.prefix}session-ends:{{s{group}}}"

    def user_sessions(self, user_id: str) -> str:
        """A user's session index."""
        return f"{self.prefix}user-sessions:{{u:{user_id}}}"

    @property
    def feed(self) -> list[str]:
        """The revocation feed: entries, revocation times, sequence counter."""
        return [f"{self.prefix}revocations:{{feed}}", f"{self.prefix}revocations:at:{{feed}}",
                f"{self.prefix}revocations:seq:{{feed}}"]  # fmt: skip

    def rate(self, key: str, window_slot: int) -> str:
        """A rate-limit counter for one fixed window."""
        return f"{self.prefix}rl:{{rl:{key}}}:{window_slot}"
