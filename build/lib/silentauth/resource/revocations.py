"""Follow the token service's revocation feed from a third-party app.

Inside the token service, revoked sessions come straight from the store. An
app elsewhere sees only access tokens; without a feed a logged-out session's
tokens stay valid there until they expire. :class:`RevocationFollower` polls

    GET {issuer}/auth/revocations?since=<cursor>
    -> 200 {"revoked": ["<sid>", ...], "cursor": <int>}

and keeps the revoked session ids in memory, so the per-request check is a
set membership test. The feed lists only sessions that are already dead, so
it reveals nothing an attacker could use.

When the feed cannot be reached the follower keeps what it knows and retries
(:class:`~silentauth.core.revoked.FollowedRevocations`, shared with the token
service's own store-fed set).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

from silentauth.core.revoked import FollowedRevocations


class RevocationFollower(FollowedRevocations):
    """Revoked session ids, kept fresh by polling the issuer's feed.

    Use ``follower.__contains__`` as a :class:`TokenAuthenticator`'s
    ``is_revoked`` and run :meth:`follow` in the app's lifespan.
    """

    # An unreachable issuer or a malformed answer; anything else is a bug.
    recoverable = (httpx.HTTPError, ValueError)

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
        super().__init__(poll=poll, max_entries=max_entries, monotonic=monotonic)
        self.url = url
        self.timeout = timeout
        self._client = client
        self._own_client = client is None

    @property
    def source(self) -> str:
        """The feed's URL."""
        return self.url

    async def fetch(self, cursor: int) -> tuple[list[str], int]:
        """``GET {url}?since=<cursor>``, checked for shape."""
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout)
        response = await self._client.get(
            self.url, params={"since": str(cursor)}, timeout=self.timeout
        )
        response.raise_for_status()
        return _parse_feed(response.json())

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
