"""Follow the token service's revocation feed from a third-party app.

Inside the token service, revoked sessions come straight from the store. An
app elsewhere sees only access tokens; without a feed a logged-out session's
tokens stay valid there until they expire. :class:`RevocationFollower` polls

    GET {issuer}/auth/revocations?since=<cursor>
    -> 200 {"revoked": ["<sid>", ...], "cursor": <int>}

and keeps the revoked session ids in memory, so the per-request check is a
set membership test. The feed lists only sessions that are already dead, so
it reveals nothing an attacker could use.

When the feed cannot be reached the follower keeps what it knows and retries:
verification goes on (fail-open for revocation only; signatures and expiry
are still enforced), and ``last_sync`` tells how stale the set is.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import anyio
import httpx

from silentauth.core.revoked import RevokedSessions

log = logging.getLogger("silentauth.resource")


class RevocationFollower(RevokedSessions):
    """Revoked session ids, kept fresh by polling the issuer's feed.

    Use ``follower.__contains__`` as a :class:`TokenAuthenticator`'s
    ``is_revoked`` and run :meth:`follow` in the app's lifespan.
    """

    def __init__(
        self,
        url: str,
        *,
        poll: float = 1.0,
        client: httpx.AsyncClient | None = None,
        timeout: float = 3.0,
        max_entries: int = 1_000_000,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(max_entries)
        self.url = url
        self.poll = poll
        self.timeout = timeout
        self.cursor = 0
        self.last_sync: float | None = None  # monotonic time of the last good sync
        self._client = client
        self._own_client = client is None
        self._monotonic = monotonic

    async def sync(self) -> int:
        """Pull the revocations after our cursor; return how many arrived."""
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout)
        response = await self._client.get(
            self.url, params={"since": str(self.cursor)}, timeout=self.timeout
        )
        response.raise_for_status()
        revoked, cursor = _parse_feed(response.json())
        for sid in revoked:
            self.add(sid)
        self.cursor = cursor
        self.last_sync = self._monotonic()
        return len(revoked)

    async def sync_quietly(self) -> bool:
        """:meth:`sync`, logging a failure instead of raising it."""
        try:
            await self.sync()
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("revocation feed %s failed: %s", self.url, type(exc).__name__)
            return False
        return True

    async def follow(self) -> None:
        """Poll forever; failures are logged and retried, never fatal."""
        while True:
            await self.sync_quietly()
            await anyio.sleep(self.poll)

    async def aclose(self) -> None:
        """Close the HTTP client if this follower created it."""
        if self._own_client and self._client is not None:
            await self._client.aclose()
            self._client = None


def _parse_feed(body: Any) -> tuple[list[str], int]:
    if not isinstance(body, dict):
        raise ValueError("revocation feed: not an object")
    revoked, cursor = body.get("revoked"), body.get("cursor")
    if not isinstance(revoked, list) or not all(isinstance(s, str) for s in revoked):
        raise ValueError("revocation feed: 'revoked' must be a list of strings")
    if not isinstance(cursor, int) or isinstance(cursor, bool) or cursor < 0:
        raise ValueError("revocation feed: 'cursor' must be a non-negative integer")
    return revoked, cursor
