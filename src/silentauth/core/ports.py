"""The records the core speaks in, and the :class:`Store` port it needs.

The core defines what it asks of persistence; the engines in
:mod:`silentauth.stores` implement it (SQLite, PostgreSQL, Redis). So the
imports run one way, stores to core, as Authlib keeps its storage interfaces
beside its models. One conformance suite (``tests/stores/test_conformance.py``)
runs against every engine. The one operation that carries the security of
rotation is :meth:`Store.rotate`: an atomic compare-and-swap on the session's
counter, never check-then-act.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import NamedTuple, Protocol


@dataclass(frozen=True)
class User:
    """A local account; ``username`` is already normalized."""

    id: str
    username: str
    password_hash: str
    created_at: float


@dataclass(frozen=True)
class ClientRecord:
    """A registered OAuth client (RFC 6749 §2).

    ``secret_hash`` is empty for a public client (identified by its id alone,
    RFC 6749 §2.1); a confidential one authenticates with the secret whose
    hash this is (:mod:`silentauth.core.clients`).
    """

    client_id: str
    secret_hash: str
    name: str
    created_at: float

    @property
    def confidential(self) -> bool:
        """Whether the client must authenticate with a secret."""
        return bool(self.secret_hash)


@dataclass(frozen=True)
class StoredKey:
    """A signing key; ``private_blob`` is encrypted under the master key."""

    kid: str
    alg: str
    private_blob: bytes
    public_jwk: str
    created_at: float  # when it starts signing; it is published from the moment it is stored
    not_after: float  # stops signing then; verifies until not_after + max access TTL


@dataclass(frozen=True)
class SessionRecord:
    """One device's login. The refresh token is derived from (id, counter)."""

    id: str
    user_id: str
    username: str
    counter: int
    scope: str
    client_id: str
    auth_time: float
    created_at: float
    last_used_at: float
    rotated_at: float
    idle_expires_at: float
    expires_at: float  # absolute; never moved by rotation
    user_agent: str = ""
    ip: str = ""
    revoked_at: float | None = None
    revoked_reason: str | None = None
    # RFC 8707 resource indicators granted at login, space-separated; the access
    # tokens' ``aud``. Empty: the service's default audience.
    resources: str = ""
    # Claims the application gave the session when it started it, as compact
    # JSON text ("" for none); every access token of the session carries them.
    claims: str = ""
    # Hash of the Idempotency-Key sent with the refresh that made the last
    # rotation ('' without one): a retry of that refresh carrying the same key
    # gets the same successor again (core/idempotency.py). Never the raw key.
    rotation_key: str = ""

    def with_(self, **changes: object) -> SessionRecord:
        """A copy with ``changes`` applied (the record itself is frozen)."""
        return replace(self, **changes)  # type: ignore[arg-type]

    def is_expired(self, now: float) -> bool:
        """Past its idle or its absolute deadline at ``now`` (revoked or not)."""
        return self.expires_at <= now or self.idle_expires_at <= now

    def is_live(self, now: float) -> bool:
        """Neither revoked nor expired at ``now``: its tokens may still be honoured.

        The engines' ``rotate`` statements spell the same condition in SQL or
        Lua; the conformance suite holds them to it.
        """
        return self.revoked_at is None and not self.is_expired(now)


@dataclass(frozen=True)
class RotateResult:
    """Outcome of the compare-and-swap: ``swapped`` and the row as it now is."""

    swapped: bool
    session: SessionRecord | None


class RotateRequest(NamedTuple):
    """One compare-and-swap of a batch (see :meth:`Store.rotate_many`)."""

    session_id: str
    counter: int
    idle_expires_at: float
    # Recorded as the session's ``rotation_key`` if the swap succeeds.
    key_hash: str = ""


class Store(Protocol):
    """What the core asks of persistence. All methods may raise StoreUnavailable."""

    async def open(self) -> None: ...
    async def close(self) -> None: ...

    # users
    async def add_user(self, user: User) -> None: ...
    async def get_user(self, username: str) -> User | None: ...
    async def list_users(self) -> list[User]: ...
    async def remove_user(self, username: str) -> bool: ...
    async def set_password(self, username: str, password_hash: str) -> bool:
        """Replace the user's password hash; False if there is no such user."""

    # registered clients
    async def add_client(self, client: ClientRecord) -> None:
        """Register ``client``; :class:`~silentauth.errors.AlreadyExists` if its id is taken."""

    async def get_client(self, client_id: str) -> ClientRecord | None: ...
    async def list_clients(self) -> list[ClientRecord]:
        """Every registered client, by id."""

    async def remove_client(self, client_id: str) -> bool: ...

    # signing keys
    async def add_key(self, key: StoredKey) -> None: ...
    async def list_keys(self) -> list[StoredKey]: ...

    # sessions
    async def create_session(self, session: SessionRecord, limit: int = 0) -> list[str]:  # pragma: no mutate - a Protocol's default is never used; each engine has its own
        """Store ``session``; with ``limit > 0``, keep its user within ``limit`` live sessions.

        In the same atomic step as the insert, the user's oldest live sessions
        (at ``session.created_at``; by ``created_at``, then id) are revoked
        with reason ``policy`` and fed to the revocation feed, as many as make
        room for the new one. So logins racing on any instances never leave
        more than ``limit`` live. Returns the ids it revoked.
        """
    async def get_session(self, session_id: str) -> SessionRecord | None: ...
    async def rotate(
        self, session_id: str, counter: int, now: float, idle_expires_at: float, key_hash: str = ""  # pragma: no mutate - a Protocol's default is never used; each engine has its own
    ) -> RotateResult:
        """Atomically move the counter from ``counter`` to ``counter + 1``.

        Succeeds only if the session is live (:meth:`SessionRecord.is_live` at
        ``now``) and its counter is still ``counter``; a successful swap also
        sets ``rotation_key`` to ``key_hash``. Either way, returns the
        row as it stands after the attempt (``None`` if it does not exist).
        """

    async def rotate_many(self, requests: Sequence[RotateRequest], now: float) -> list[RotateResult]:
        """:meth:`rotate` for each request, in order, at one ``now``.

        Each swap is as atomic as :meth:`rotate`'s, and a later request sees
        the effect of an earlier one on the same session. If this raises, any
        of the swaps may or may not have happened: callers answer 503, and a
        client's retry lands in the grace window.
        """

    async def revoke_session(self, session_id: str, reason: str, now: float) -> bool: ...
    async def revoke_user_sessions(self, user_id: str, reason: str, now: float) -> list[str]: ...
    async def list_sessions(self, user_id: str) -> list[SessionRecord]: ...

    async def revocations_since(self, cursor: int) -> tuple[list[str], int]:
        """Session ids revoked after ``cursor``, and the new cursor.

        ``cursor=0`` means from the start of the retained feed.
        """

    async def purge(self, now: float, keep_revocations: float) -> int:
        """Delete ended sessions and revocation entries older than needed."""

    # rate limits (fixed windows, shared by every instance on the store)
    async def hit(self, key: str, window: int, now: float) -> int:
        """Count one event for ``key`` in the current window; return the count."""

    async def peek(self, key: str, window: int, now: float) -> int: ...
