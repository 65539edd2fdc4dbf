"""The ``late_once`` rotation rule under interleavings of use, lost answers and a thief.

A Hypothesis state machine drives the real :class:`SessionService` (SQLite in
memory, virtual clock) with one legitimate client ``L`` and one thief ``T`` who
copies ``L``'s refresh token. Invariants:

- one lineage: every token handed out is the session's current one (no fork);
- ``L`` following the protocol is never refused before the thief acts: any number
  of lost answers retried within ``RETRY_WINDOW``, and one lost answer followed by
  a long absence (an app killed mid-refresh, resumed the next day);
- no ping-pong: once the thief got in, stale tokens presented after a long gap
  are honoured for one of the two holders only (until they hold the same token
  again): the first such honour orphans the other, whose next stale presentation
  revokes the session.
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    initialize,
    invariant,
    precondition,
    rule,
)

from silentauth.core.rotation_rules import RETRY_WINDOW
from silentauth.errors import InvalidGrant
from tests.fuzz.session_machine import OneSessionMachine

LONG = st.floats(min_value=RETRY_WINDOW + 1, max_value=2 * 86400)
SHORT = st.floats(min_value=0, max_value=RETRY_WINDOW / 2)


class RotationMachine(OneSessionMachine):
    """One session, its owner, maybe a thief."""

    @initialize()
    def start(self) -> None:
        self.open_session("late_once")
        self.unheard = False  # L's last answer was lost
        self.absences = 0  # long absences since L last heard an answer
        self.stolen: str | None = None
        self.thief_in = False
        self.revoked = False
        self.sent_at = self.clock()
        # Whose stale token was honoured after a long gap since owner and thief diverged.
        self.honoured: str | None = None

    def refresh(self, token: str, who: str) -> str | None:
        """Present ``token``; the new token, or None if refused (checking one lineage)."""
        before = self.run(self.core.store.get_session(self.sid))
        stale_and_late = (
            before is not None
            and self.clock() - before.rotated_at > RETRY_WINDOW
            and self.core.service.refresh_tokens.parse(token)[1] < before.counter
        )
        try:
            grant = self.run(self.core.service.refresh(token))
        except InvalidGrant:
            row = self.run(self.core.store.get_session(self.sid))
            self.revoked = row is not None and row.revoked_reason == "reuse"
            return None
        row = self.run(self.core.store.get_session(self.sid))
        counter = self.core.service.refresh_tokens.parse(grant.refresh_token)[1]
        assert row is not None and counter == row.counter, "a token off the live lineage was handed out"
        if self.thief_in and stale_and_late:
            assert self.honoured in (None, who), f"{who} honoured late after {self.honoured} (ping-pong)"
            self.honoured = who
        return grant.refresh_token

    def owner_away(self) -> bool:
        """The owner's last answer was lost and it has not retried within the window."""
        return self.unheard and self.clock() - self.sent_at > RETRY_WINDOW

    @precondition(lambda self: not self.revoked and not (self.owner_away() and self.absences >= 1))
    @rule(lost=st.booleans())
    def owner_refreshes(self, lost: bool) -> None:
        # The protocol: after a lost answer, retry inside the window, or after one absence.
        if self.owner_away():
            self.absences += 1
        self.sent_at = self.clock()
        token = self.refresh(self.legit, "owner")
        if token is None:
            assert self.thief_in, "the owner was refused although no thief had acted"
            return
        if lost:
            self.unheard = True
        else:
            self.legit, self.unheard, self.absences = token, False, 0

    @rule(seconds=SHORT)
    def moment(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule(seconds=LONG)
    def absence(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @precondition(lambda self: self.stolen is None)
    @rule()
    def thief_copies(self) -> None:
        self.stolen = self.legit

    @precondition(lambda self: self.stolen is not None and not self.revoked)
    @rule()
    def thief_replays(self) -> None:
        assert self.stolen is not None
        token = self.refresh(self.stolen, "thief")
        if token is not None:
            self.stolen, self.thief_in = token, True

    @invariant()
    def shared_token_means_no_divergence_yet(self) -> None:
        if hasattr(self, "honoured") and self.stolen == self.legit:
            self.honoured = None


TestRotationMachine = RotationMachine.TestCase
TestRotationMachine.settings = settings(
    max_examples=400, stateful_step_count=25, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
