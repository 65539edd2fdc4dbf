"""The set of revoked session ids that every access-token check consults."""

from __future__ import annotations


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
        self._revoked[session_id] = None
        if len(self._revoked) > self._max:
            del self._revoked[next(iter(self._revoked))]
