"""Registered OAuth clients: who may ask for tokens, and how they prove it.

RFC 6749 §2 distinguishes public clients (a browser page, a mobile app: they
cannot keep a secret, so they are identified by ``client_id`` alone) from
confidential ones (a backend, an API gateway: they authenticate with a
secret, §2.3.1). The ``client_id`` claim of an access token (RFC 9068 §2.2)
and the right to revoke or introspect a token follow from this registry, never
from what a caller says about itself.

Two public clients are built in and always registered, so existing callers
keep working: ``browser`` (the cookie login of ``/auth/login``) and ``native``
(the password grant without a ``client_id``). Others are added with
``silentauth clients add``.

Secrets are generated here (256 bits from :mod:`secrets`) and only their
SHA-256 is stored: a secret that long cannot be guessed offline, so a slow
password hash would add latency to every authenticated call and no safety.
Look-ups are cached for :data:`CACHE_SECONDS`, so a removed client or a
changed secret takes effect within that time on every instance.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from silentauth.clock import Clock
from silentauth.core.ports import ClientRecord, Store
from silentauth.errors import AlreadyExists, InvalidClient

BUILTIN: dict[str, str] = {
    "browser": "built-in: the browser client (cookie login)",
    "native": "built-in: apps using the password grant without a client_id",
}
CACHE_SECONDS = 5.0
# RFC 6749 Appendix A.1 allows any VSCHAR; a narrower set keeps ids safe in
# logs, URLs and Basic credentials without escaping.
_CLIENT_ID = re.compile(r"[A-Za-z0-9._~-]{1,128}")
_HASH_PREFIX = "sha256$"

AuthMethod = Literal["none", "client_secret_basic", "client_secret_post"]


@dataclass(frozen=True)
class ClientCredentials:
    """What a request says about its client (RFC 6749 §2.3.1).

    ``secret`` is None for a public client's request (``method="none"``);
    ``client_id`` is None when the request names no client at all.
    """

    client_id: str | None
    secret: str | None = None
    method: AuthMethod = "none"


def hash_secret(secret: str) -> str:
    """The stored form of a client secret."""
    return _HASH_PREFIX + hashlib.sha256(secret.encode("utf-8")).hexdigest()  # pragma: no mutate - codec names ignore case


def valid_client_id(client_id: str) -> bool:
    """Whether ``client_id`` may be registered."""
    return _CLIENT_ID.fullmatch(client_id) is not None


class ClientRegistry:
    """The built-in public clients plus those in the store, with a short cache."""

    def __init__(
        self, store: Store, clock: Clock, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self.store = store
        self.clock = clock
        self._monotonic = monotonic
        self._cache: dict[str, tuple[float, ClientRecord | None]] = {}
        # (checked at, any confidential client registered). True is kept for good:
        # forgetting it could let a secret-less refresh through; keeping it costs
        # only a session read per such refresh.
        self._any_confidential: tuple[float, bool] | None = None

    async def get(self, client_id: str) -> ClientRecord | None:
        """The client registered as ``client_id``, or None."""
        if client_id in BUILTIN:
            return ClientRecord(client_id, "", BUILTIN[client_id], 0.0)
        if not valid_client_id(client_id):
            return None  # never stored, so no store round trip for garbage
        now = self._monotonic()
        hit = self._cache.get(client_id)
        if hit is not None and now - hit[0] < CACHE_SECONDS:
            return hit[1]
        record = await self.store.get_client(client_id)
        if len(self._cache) > 10_000:
            self._cache.clear()  # bounded: unknown ids cannot grow it without limit
        self._cache[client_id] = (now, record)
        if record is not None and record.confidential:
            self._any_confidential = (now, True)
        return record

    async def any_confidential(self) -> bool:
        """Whether any confidential client is registered (a negative answer is cached).

        Lets the refresh path skip a session read when no refresh token can
        belong to a client that must authenticate, the common deployment.
        """
        now = self._monotonic()
        known = self._any_confidential
        if known is not None and (known[1] or now - known[0] < CACHE_SECONDS):
            return known[1]
        found = any(record.confidential for record in await self.store.list_clients())
        self._any_confidential = (now, found)
        return found

    async def is_confidential(self, client_id: str) -> bool:
        """Whether ``client_id`` names a client that must authenticate."""
        record = await self.get(client_id)
        return record is not None and record.confidential

    async def authenticate(self, creds: ClientCredentials, default: str | None = None) -> ClientRecord | None:
        """The client behind ``creds``, or :class:`InvalidClient` (401).

        A request without credentials is the public client it names (or
        ``default``; None when neither names one). A confidential client must
        present its secret; a secret for a public or unknown client fails.
        """
        client_id = creds.client_id or default
        if client_id is None:
            return None
        record = await self.get(client_id)
        if creds.secret is None:
            if record is None:
                raise InvalidClient(f"Unknown client {client_id[:128]!r}.")
            if record.confidential:
                raise InvalidClient("This client must authenticate with its secret.")
            return record
        # Compared even for an unknown client, so timing does not tell ids apart.
        stored = record.secret_hash if record is not None and record.confidential else hash_secret("")  # pragma: no mutate - fails below whatever it is compared with
        if not hmac.compare_digest(hash_secret(creds.secret), stored) or record is None or not record.confidential:
            raise InvalidClient()
        return record

    async def register(self, client_id: str, name: str = "", *, confidential: bool = True) -> tuple[ClientRecord, str | None]:
        """Add a client; returns it and its secret (shown once; None for a public client)."""
        if client_id in BUILTIN:
            raise AlreadyExists(f"client {client_id!r} is built in")
        if not valid_client_id(client_id):
            raise ValueError("a client id is 1-128 characters of A-Z a-z 0-9 . _ ~ -")
        secret = secrets.token_urlsafe(32) if confidential else None  # pragma: no mutate - token_urlsafe(None) is 32 bytes too
        record = ClientRecord(client_id, hash_secret(secret) if secret else "", name[:200], self.clock())
        await self.store.add_client(record)
        self._cache.pop(client_id, None)
        if confidential:
            self._any_confidential = (self._monotonic(), True)
        return record, secret

    async def all(self) -> list[ClientRecord]:
        """The built-in clients, then the registered ones."""
        builtin = [ClientRecord(cid, "", name, 0.0) for cid, name in BUILTIN.items()]
        return builtin + await self.store.list_clients()

    async def remove(self, client_id: str) -> bool:
        """Unregister ``client_id``; the built-in clients cannot be removed."""
        if client_id in BUILTIN:
            raise ValueError(f"client {client_id!r} is built in and cannot be removed")
        self._cache.pop(client_id, None)
        return await self.store.remove_client(client_id)
