"""The session state machine against a model: random interleavings, one truth.

Hypothesis drives the real app in-process (httpx ASGITransport, SQLite,
FakeClock) through logins, refreshes with the current token or a stale one
(inside and outside ``REUSE_GRACE``), RFC 7009 revocation, bearer logout,
access-token use and clock jumps past idle and absolute expiry. A small model
predicts every answer; after each step the store must agree with the model on
every session's counter and revocation, and each refresh must count exactly
one metric outcome — the one the model predicts.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    rule,
)

from silentauth.clock import FakeClock
from silentauth.server.app import create_app
from tests.conftest import FAST_PASSWORDS, make_settings, metric_value

T = TypeVar("T")

ACCESS_TTL = 60
IDLE_TTL = 300
MAX_AGE = 1000
GRACE = 10.0
LEEWAY = 5.0  # AccessTokenVerifier's default clock-skew allowance


@dataclass
class ModelSession:
    """What the model believes about one session."""

    counter: int
    rotated_at: float
    idle_expires_at: float
    expires_at: float
    revoked: bool = False
    access_token: str = ""
    access_exp: int = 0

    def live(self, now: float) -> bool:
        return not self.revoked and self.idle_expires_at > now and self.expires_at > now


class SessionMachine(RuleBasedStateMachine):
    sessions = Bundle("sessions")

    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="silentauth-sm-"))
        self.clock = FakeClock(1_800_000_000.25)
        self.loop = asyncio.new_event_loop()
        s = make_settings(
            self.tmp,
            access_ttl=ACCESS_TTL,
            refresh_idle_ttl=IDLE_TTL,
            session_max_age=MAX_AGE,
            reuse_grace=GRACE,
            # The model below is the one-generation grace rule's.
            rotation_rule="grace",
            renew_within=0,
        )
        self.app = create_app(s, clock=self.clock, passwords=FAST_PASSWORDS, background=False)
        self.rt = self.app.state.runtime
        # What the lifespan does with background=False, minus its task group
        # (which must exit in the task that entered it; each step is a new task).
        self.run(self.rt.start())
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app), base_url="http://testserver"
        )
        self.run(self.rt.ensure_user("alice", "secret"))
        self.model: dict[str, ModelSession] = {}

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        self.run(self.client.aclose())
        self.run(self.rt.store.close())
        self.loop.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    # -- helpers ---------------------------------------------------------------

    def outcome_count(self, outcome: str) -> float:
        return metric_value(self.rt.metrics.render().decode(), "silentauth_refresh_total", outcome=outcome)

    def adopt_access(self, m: ModelSession, body: dict[str, Any], now: float) -> None:
        m.access_token = body["access_token"]
        m.access_exp = int(min(now + ACCESS_TTL, m.expires_at))
        assert body["expires_in"] == max(0, m.access_exp - int(now))

    def predict_refresh(self, m: ModelSession, counter: int, now: float) -> str:
        if m.revoked:
            return "invalid"
        if m.live(now) and m.counter == counter:
            return "rotated"
        if not m.live(now):
            return "expired"
        if m.counter == counter + 1 and now - m.rotated_at <= GRACE:
            return "grace"
        if m.counter > counter:
            return "reuse_detected"
        return "invalid"

    # -- rules -----------------------------------------------------------------

    @initialize(target=sessions)
    def first_login(self) -> str:
        return self.login()

    @rule(target=sessions, dice=st.integers(0, 2))
    def another_login(self, dice: int) -> Any:
        # Rare, so that each session sees many operations.
        return multiple() if dice else self.login()

    def login(self) -> str:
        now = self.clock()
        r = self.run(
            self.client.post(
                "/auth/token", data={"grant_type": "password", "username": "alice", "password": "secret"}
            )
        )
        assert r.status_code == 200, r.text
        body = r.json()
        sid, counter = self.rt.refresh_tokens.parse(body["refresh_token"])
        assert counter == 0 and sid not in self.model
        m = ModelSession(0, now, min(now + IDLE_TTL, now + MAX_AGE), now + MAX_AGE)
        self.adopt_access(m, body, now)
        self.model[sid] = m
        return sid

    @rule(sid=sessions)
    def refresh_current(self, sid: str) -> None:
        self.refresh(sid, 0)

    @rule(sid=sessions, behind=st.sampled_from([1, 1, 1, 2, 3]))
    def refresh_stale(self, sid: str, behind: int) -> None:
        self.refresh(sid, behind)

    @rule(sid=sessions, gap=st.sampled_from([0.0, 5.0, 9.5, 10.0, 10.5, 30.0]))
    def rotate_then_replay_parent(self, sid: str, gap: float) -> None:
        """A racing or retrying client (inside grace) or a thief (outside it)."""
        self.refresh(sid, 0)
        self.clock.advance(gap)
        self.refresh(sid, 1)

    def refresh(self, sid: str, behind: int) -> None:
        """Refresh with the current token (behind=0) or one ``behind`` rotations old."""
        m = self.model[sid]
        counter = m.counter - behind
        if counter < 0:
            return
        now = self.clock()
        expected = self.predict_refresh(m, counter, now)
        event(f"refresh -> {expected}")
        before = self.outcome_count(expected)
        token = self.rt.refresh_tokens.issue(sid, counter)
        r = self.run(
            self.client.post("/auth/token", data={"grant_type": "refresh_token", "refresh_token": token})
        )
        assert self.outcome_count(expected) == before + 1, (expected, r.text)
        if expected in ("rotated", "grace"):
            assert r.status_code == 200, (expected, r.text)
            if expected == "rotated":
                m.counter += 1
                m.rotated_at = now
                m.idle_expires_at = min(now + IDLE_TTL, m.expires_at)
            # Racers and retries converge on one successor: never a fork.
            assert r.json()["refresh_token"] == self.rt.refresh_tokens.issue(sid, m.counter)
            self.adopt_access(m, r.json(), now)
        else:
            assert r.status_code == 400 and r.json()["error"] == "invalid_grant", (expected, r.text)
            if expected == "reuse_detected":
                m.revoked = True

    # Ending a session is drawn rarely (1 in 4), so that most sessions live
    # long enough to rotate, race and expire.
    @rule(sid=sessions, stale=st.booleans(), dice=st.integers(0, 3))
    def revoke(self, sid: str, stale: bool, dice: int) -> None:
        """RFC 7009 with the current refresh token (or a stale one: still this session)."""
        if dice:
            return
        m = self.model[sid]
        token = self.rt.refresh_tokens.issue(sid, max(0, m.counter - int(stale)))
        r = self.run(self.client.post("/auth/revoke", data={"token": token}))
        assert r.status_code == 200
        m.revoked = True

    @rule(sid=sessions, dice=st.integers(0, 3))
    def logout_with_bearer(self, sid: str, dice: int) -> None:
        if dice:
            return
        m = self.model[sid]
        r = self.run(
            self.client.post("/auth/logout", headers={"Authorization": f"Bearer {m.access_token}"})
        )
        if self.access_valid(m):
            assert r.status_code == 204, r.text
            m.revoked = True
        else:
            assert r.status_code == 401, r.text

    @rule(sid=sessions)
    def use_access_token(self, sid: str) -> None:
        m = self.model[sid]
        r = self.run(self.client.get("/api/me", headers={"Authorization": f"Bearer {m.access_token}"}))
        assert r.status_code == (200 if self.access_valid(m) else 401), r.text
        if r.status_code == 200:
            assert r.json()["session_id"] == sid

    def access_valid(self, m: ModelSession) -> bool:
        return not m.revoked and m.access_exp > self.clock() - LEEWAY

    @rule(seconds=st.sampled_from([0.5, 3.0, 9.0, 10.0, 11.0, 30.0, 61.0]))
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule(seconds=st.sampled_from([150.0, 299.0, 301.0, 1001.0]), dice=st.integers(0, 2))
    def advance_past_expiry(self, seconds: float, dice: int) -> None:
        if not dice:
            self.clock.advance(seconds)

    # -- the store never disagrees with the model ------------------------------

    @invariant()
    def store_agrees_with_model(self) -> None:
        for sid, m in self.model.items():
            row = self.run(self.rt.store.get_session(sid))
            assert row is not None
            assert row.counter == m.counter, (sid, row.counter, m.counter)
            assert (row.revoked_at is not None) == m.revoked, (sid, row.revoked_at, m.revoked)
            assert row.expires_at == m.expires_at
            assert row.idle_expires_at == m.idle_expires_at

    @invariant()
    def live_sessions_listed_are_the_models(self) -> None:
        now = self.clock()
        listed = {s.id for s in self.run(self.rt.service.sessions(self.run_user_id()))}
        assert listed == {sid for sid, m in self.model.items() if m.live(now)}

    def run_user_id(self) -> str:
        user = self.run(self.rt.store.get_user("alice"))
        assert user is not None
        return str(user.id)


SessionMachine.TestCase.settings = settings(
    max_examples=60,
    stateful_step_count=50,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestSessionStateMachine = SessionMachine.TestCase
