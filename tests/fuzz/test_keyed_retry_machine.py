"""The default rule (``burst``) with idempotent refresh retries, under interleavings.

A Hypothesis state machine drives the real :class:`SessionService` (SQLite in
memory, virtual clock) with an owner ``L`` who sends an ``Idempotency-Key`` with
each refresh (kept until an answer arrives) and may lose any answer and go away
for any time, and a thief ``T`` who copies the refresh token (and the pending
key, if ``L``'s storage is copied while a refresh is unanswered). Invariants:

- at most one live lineage: every token handed out is the session's current one;
- a protocol-following owner is never refused before the thief acted, however
  many answers were lost and however long it was away (within the lifetimes);
- a stale token presented after ``REUSE_GRACE`` without the key of its own
  rotation (a thief's replay after divergence) always revokes the session.
"""

from __future__ import annotations

import secrets

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import initialize, precondition, rule

from silentauth.core.idempotency import key_hash, same_key
from silentauth.errors import InvalidGrant
from tests.fuzz.session_machine import OneSessionMachine

GRACE = 10.0
# Up to a day each: 25 steps stay within the signing keys' lifetime (this machine runs no key rotation).
LONG = st.floats(min_value=GRACE + 1, max_value=86400)
SHORT = st.floats(min_value=0, max_value=GRACE / 2)


class KeyedRetryMachine(OneSessionMachine):
    """One session, its keyed owner, maybe a thief."""

    @initialize()
    def start(self) -> None:
        self.open_session("burst", reuse_grace=GRACE)
        self.key: str | None = None  # the owner's pending Idempotency-Key
        self.stolen: str | None = None
        self.stolen_key: str | None = None
        self.thief_acted = False
        self.revoked = False

    def counter(self, token: str) -> int:
        return self.core.service.refresh_tokens.parse(token)[1]

    def refresh(self, token: str, key: str | None) -> str | None:
        """Present ``token`` with ``key``; the new token, or None if refused."""
        before = self.run(self.core.store.get_session(self.sid))
        assert before is not None
        stale_late_unproven = (
            self.counter(token) < before.counter
            and self.clock() - before.rotated_at > GRACE
            and not (self.counter(token) + 1 == before.counter and same_key(before.rotation_key, key_hash(key)))
        )
        try:
            grant = self.run(self.core.service.refresh(token, idempotency_key=key))
        except InvalidGrant:
            row = self.run(self.core.store.get_session(self.sid))
            self.revoked = row is not None and row.revoked_reason == "reuse"
            if stale_late_unproven and before.revoked_at is None:
                assert self.revoked, "a late replay without the rotation's key did not revoke the session"
            return None
        assert not stale_late_unproven, "a late replay without the rotation's key was honoured"
        row = self.run(self.core.store.get_session(self.sid))
        assert row is not None and self.counter(grant.refresh_token) == row.counter, "the lineage forked"
        return grant.refresh_token

    @precondition(lambda self: not self.revoked)
    @rule(lost=st.booleans())
    def owner_refreshes(self, lost: bool) -> None:
        # The protocol: a key stored before sending, reused until an answer arrives.
        self.key = self.key or secrets.token_urlsafe(24)
        token = self.refresh(self.legit, self.key)
        if token is None:
            assert self.thief_acted, "the owner was refused although no thief had acted"
            return
        if not lost:
            self.legit, self.key = token, None

    @rule(seconds=SHORT)
    def moment(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule(seconds=LONG)
    def absence(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @precondition(lambda self: self.stolen is None)
    @rule(storage=st.booleans())
    def thief_copies(self, storage: bool) -> None:
        # The refresh token alone, or the whole storage (with a pending key, if any).
        self.stolen, self.stolen_key = self.legit, (self.key if storage else None)

    @precondition(lambda self: self.stolen is not None and not self.revoked)
    @rule()
    def thief_replays(self) -> None:
        assert self.stolen is not None
        self.thief_acted = True
        token = self.refresh(self.stolen, self.stolen_key)
        if token is not None:
            # The thief now holds a token of its own; the copied key was for the old one.
            self.stolen, self.stolen_key = token, None


TestKeyedRetryMachine = KeyedRetryMachine.TestCase
TestKeyedRetryMachine.settings = settings(
    max_examples=100, stateful_step_count=20, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
