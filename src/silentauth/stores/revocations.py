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

from silentauth.core.revoked import RevokedSessions
from silentauth.stores.base import Store

log = logging.getLogger("silentauth.revocations")


class RevocationSet(RevokedSessions):
    """Revoked session ids, fed by this instance and by the store's feed."""

    def __init__(self, store: Store, max_entries: int = 1_000_000) -> None:
        super().__init__(max_entries)
        self._store = store
        self._cursor = 0
        self.synced = False

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
