"""Revoked session ids: the set every access-token check consults, and its feed.

Verifying an access token must not cost a round trip, yet a revoked session's
tokens must fail within about a second. So each process keeps the revoked
session ids in memory and follows a feed of new revocations by cursor:

- inside the token service, the store's feed (:class:`RevocationSet`);
- in an app elsewhere, the issuer's HTTP feed
  (:class:`~silentauth.resource.revocations.RevocationFollower`).

Both share :class:`FollowedRevocations`: the cursor, the polling loop, and the
rule that a failing feed is logged and retried, never fatal — verification
goes on with what is known (fail-open for revocation only; signatures and
expiry are still enforced), and ``last_sync`` tells how stale the set is.
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import ClassVar

import anyio

from silentauth.core.ports import Store

log = logging.getLogger("silentauth.revocations")


class RevokedSessions:
    """Session ids whose access tokens must be refused: O(1) look-up, bounded size.

    Kept in insertion order so that, past ``max_entries``, the oldest entries go
    first — their access tokens expired long ago.
    """

    def __init__(self, max_entries: int = 1_000_000) -> None:
        self._revoked: dict[str, None] = {}
        self._max = max_entries

    def __contains__(self, session_id: object) -> bool:
        return session_id in self._revoked

    def __len__(self) -> int:
        return len(self._revoked)

    def add(self, session_id: str) -> None:
        """Refuse ``session_id`` from now on."""
        self._revoked[session_id] = None  # pragma: no mutate - a dict used as an ordered set: values unread
        if len(self._revoked) > self._max:
            del self._revoked[next(iter(self._revoked))]


class FollowedRevocations(RevokedSessions, ABC):
    """A revoked set kept fresh by reading a feed after a cursor.

    Subclasses say how to read the feed (:meth:`fetch`) and which failures of
    it are expected (``recoverable``); anything else is a bug and propagates.
    """

    recoverable: ClassVar[tuple[type[Exception], ...]] = (Exception,)

    def __init__(
        self,
        *,
        poll: float,
        max_entries: int = 1_000_000,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(max_entries)
        self.poll = poll
        self.cursor = 0
        self.last_sync: float | None = None  # monotonic time of the last good sync
        self.last_attempt: float | None = None  # ... and of the last try, good or not
        self._monotonic = monotonic

    @property
    @abstractmethod
    def source(self) -> str:
        """Names the feed in log lines."""

    @abstractmethod
    async def fetch(self, cursor: int) -> tuple[list[str], int]:
        """Session ids revoked after ``cursor`` (0: from the start), and the new cursor."""

    def due(self) -> bool:
        """Whether ``poll`` seconds have passed since the last attempt to sync."""
        last = self.last_attempt
        return last is None or self._monotonic() - last >= self.poll

    async def sync(self) -> int:
        """Pull the revocations after our cursor; return how many arrived."""
        self.last_attempt = self._monotonic()
        revoked, cursor = await self.fetch(self.cursor)
        for sid in revoked:
            self.add(sid)
        self.cursor = cursor
        self.last_sync = self._monotonic()
        return len(revoked)

    async def sync_quietly(self) -> bool:
        """:meth:`sync`, logging an expected failure instead of raising it."""
        try:
            await self.sync()
        except self.recoverable as exc:
            log.warning("revocation feed %s failed: %s", self.source, type(exc).__name__)
            return False
        return True

    async def follow(self, poll: float | None = None) -> None:
        """Poll forever, every ``poll`` seconds (default: the constructor's)."""
        while True:
            await self.sync_quietly()
            await anyio.sleep(self.poll if poll is None else poll)


class RevocationSet(FollowedRevocations):
    """The token service's set: fed by this instance and by the store's feed.

    Revocations made here enter the set at once (:meth:`add`); those made by
    other instances, or by the command line, arrive from the store. Any store
    failure is recoverable: the next poll retries.
    """

    def __init__(self, store: Store, *, poll: float = 1.0, max_entries: int = 1_000_000) -> None:
        super().__init__(poll=poll, max_entries=max_entries)
        self._store = store

    @property
    def source(self) -> str:
        """The store's feed."""
        return "store"

    async def fetch(self, cursor: int) -> tuple[list[str], int]:
        """The store's revocation feed after ``cursor``."""
        return await self._store.revocations_since(cursor)
