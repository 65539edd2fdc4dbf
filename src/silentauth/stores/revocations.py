"""The in-process set of revoked sessions, kept fresh from the store.

Verifying an access token must not cost a database round trip, yet a revoked
session's tokens must fail within a second. Revocations made by this instance
enter the set at once; those made elsewhere arrive by polling the store's
revocation feed every ``poll`` seconds (engines with push notifications may
call :meth:`RevocationSet.sync` sooner).
"""

from __future__ import annotations

import logging

import anyio

from silentauth.stores.base import Store

log = logging.getLogger("silentauth.revocations")


class RevocationSet:
    """Session ids whose access tokens must be refused."""

    def __init__(self, store: Store, max_entries: int = 1_000_000) -> None:
        self._store = store
        self._revoked: dict[str, None] = {}  # insertion-ordered set
        self._cursor = 0
        self._max = max_entries
        self.synced = False

    def __contains__(self, session_id: object) -> bool:
        return session_id in self._revoked

    def __len__(self) -> int:
        return len(self._revoked)

    def add(self, session_id: str) -> None:
        self._revoked[session_id] = None
        if len(self._revoked) > self._max:
            # Oldest first: their access tokens have long expired.
            del self._revoked[next(iter(self._revoked))]

    async def sync(self) -> int:
        """Pull revocations made since the last sync; return how many arrived."""
        ids, self._cursor = await self._store.revocations_since(self._cursor)
        for sid in ids:
            self.add(sid)
        self.synced = True
        return len(ids)

    async def follow(self, poll: float) -> None:
        """Poll forever; a failing store is logged and retried, never fatal."""
        while True:
            try:
                await self.sync()
            except Exception as exc:  # keep verifying with what we know
                log.warning("revocation sync failed: %s", type(exc).__name__)
            await anyio.sleep(poll)
