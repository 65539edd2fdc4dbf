"""The session service on its own: a real SQLite file, a fake clock, no HTTP.

Every outcome of login and refresh (module docstring of
:mod:`silentauth.core.sessions`) is driven here through :class:`TokenCore`,
and the events the service reports are recorded by a plain implementation of
:class:`~silentauth.core.events.SessionEvents`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from silentauth.clock import FakeClock
from silentauth.core.assembly import TokenCore
from silentauth.core.events import LoginOutcome, RefreshOutcome, RevokeReason
from silentauth.core.passwords import Passwords
from silentauth.core.ports import SessionRecord
from silentauth.core.rotation_rules import RETRY_WINDOW
from silentauth.errors import InvalidGrant
from silentauth.settings import Settings
from silentauth.stores.sqlite import SQLiteStore

pytestmark = pytest.mark.anyio

IDLE = 3600
MAX_AGE = 4 * 3600
GRACE = 10.0


class Recorder:
    """A :class:`SessionEvents` that keeps every event, in order."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []
        self.batches: list[int] = []

    def on_login(self, outcome: LoginOutcome) -> None:
        self.events.append(("login", outcome))

    def on_refresh(self, outcome: RefreshOutcome) -> None:
        self.events.append(("refresh", outcome))

    def on_revoke(self, reason: RevokeReason) -> None:
        self.events.append(("revoked", reason))

    def on_renewal(self) -> None:
        self.events.append(("renewal", "ok"))

    def on_batch(self, size: int) -> None:
        self.batches.append(size)

    def take(self) -> list[tuple[str, str]]:
        """The events since the last call."""
        taken, self.events = self.events, []
        return taken


class World:
    """The core over a SQLite file, its clock and its event recorder."""

    def __init__(self, core: TokenCore, clock: FakeClock, events: Recorder) -> None:
        self.core = core
        self.service = core.service
        self.clock = clock
        self.events = events

    async def session(self, refresh_token: str) -> SessionRecord:
        record = await self.core.store.get_session(self.service.session_of(refresh_token))
        assert record is not None
        return record


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'core.db'}",
        secret_key="core-test-secret-with-at-least-32-bytes",
        access_ttl=300,
        refresh_idle_ttl=IDLE,
        session_max_age=MAX_AGE,
        reuse_grace=GRACE,
        ttl_jitter=0.0,
        first_token_spread=0.0,
        rate_limit_login=None,
        rate_limit_refresh=None,
    )
    clock = FakeClock(1_800_000_000.0)
    events = Recorder()
    core = TokenCore(
        settings=settings,
        store=SQLiteStore(settings.database_url),
        clock=clock,
        passwords=Passwords(time_cost=1, memory_cost=1024, parallelism=1),
        events=events,
    )
    await core.store.open()
    try:
        await core.start()
        await core.users.add("Alice", "secret")
        yield World(core, clock, events)
    finally:
        await core.store.close()


async def test_login_opens_a_session_and_bad_credentials_do_not(world: World) -> None:
    with pytest.raises(InvalidGrant):
        await world.service.login("alice", "wrong")
    with pytest.raises(InvalidGrant):
        await world.service.login("nobody", "secret")
    grant = await world.service.login("ALICE", "secret", ip="10.0.0.1")
    assert grant.outcome == "ok" and grant.expires_in == 300
    assert grant.session.username == "alice" and grant.session.counter == 0
    assert await world.session(grant.refresh_token) == grant.session
    assert world.events.take() == [
        ("login", "bad_credentials"),
        ("login", "bad_credentials"),
        ("login", "ok"),
    ]


async def test_refresh_rotates_and_a_retry_within_grace_gets_the_same_successor(world: World) -> None:
    first = await world.service.login("alice", "secret")
    world.clock.advance(60)
    second = await world.service.refresh(first.refresh_token)
    assert second.outcome == "rotated" and second.refresh_token != first.refresh_token
    assert (await world.session(second.refresh_token)).counter == 1
    world.clock.advance(GRACE)  # the edge of the grace window still counts
    retried = await world.service.refresh(first.refresh_token)
    assert retried.outcome == "grace" and retried.refresh_token == second.refresh_token
    assert (await world.session(second.refresh_token)).counter == 1  # no fork
    assert world.events.take() == [("login", "ok"), ("refresh", "rotated"), ("refresh", "grace")]
    assert world.events.batches == [1, 1]


async def test_reuse_after_grace_revokes_the_whole_session(world: World) -> None:
    first = await world.service.login("alice", "secret")
    second = await world.service.refresh(first.refresh_token)
    # The successor is used: the old token can no longer be a lost answer's retry.
    third = await world.service.refresh(second.refresh_token)
    world.clock.advance(RETRY_WINDOW + 1)
    with pytest.raises(InvalidGrant, match="already used"):
        await world.service.refresh(first.refresh_token)
    sid = second.session.id
    assert (await world.session(third.refresh_token)).revoked_reason == "reuse"
    assert sid in world.core.revocations  # its access tokens die at once too
    with pytest.raises(InvalidGrant, match="revoked"):
        await world.service.refresh(third.refresh_token)
    assert world.events.take()[1:] == [
        ("refresh", "rotated"),
        ("refresh", "rotated"),
        ("revoked", "reuse"),
        ("refresh", "reuse_detected"),
        ("refresh", "invalid"),
    ]


async def test_an_idle_session_expires(world: World) -> None:
    grant = await world.service.login("alice", "secret")
    world.clock.advance(IDLE - 1)
    grant = await world.service.refresh(grant.refresh_token)  # use moves the idle deadline
    world.clock.advance(IDLE - 1)
    grant = await world.service.refresh(grant.refresh_token)
    world.clock.advance(IDLE)
    with pytest.raises(InvalidGrant, match="expired"):
        await world.service.refresh(grant.refresh_token)
    assert world.events.take()[-1] == ("refresh", "expired")
    assert await world.service.sessions(grant.session.user_id) == []


async def test_a_busy_session_still_ends_at_its_absolute_limit(world: World) -> None:
    grant = await world.service.login("alice", "secret")
    started = world.clock()
    while world.clock() + IDLE / 2 < started + MAX_AGE:
        world.clock.advance(IDLE / 2)
        grant = await world.service.refresh(grant.refresh_token)
        # The access token never outlives the session.
        assert world.clock() + grant.expires_in <= started + MAX_AGE
    world.clock.set(started + MAX_AGE)
    with pytest.raises(InvalidGrant, match="expired"):
        await world.service.refresh(grant.refresh_token)
    assert world.events.take()[-1] == ("refresh", "expired")


async def test_logout_revokes_refresh_and_access_at_once(world: World) -> None:
    grant = await world.service.login("alice", "secret")
    other = await world.service.login("alice", "secret")
    user_id = grant.session.user_id
    assert {s.id for s in await world.service.sessions(user_id)} == {grant.session.id, other.session.id}
    assert await world.service.revoke(grant.session.id, "logout") is True
    assert await world.service.revoke(grant.session.id, "logout") is False  # once only
    assert grant.session.id in world.core.revocations
    with pytest.raises(InvalidGrant):
        await world.service.refresh(grant.refresh_token)
    assert [s.id for s in await world.service.sessions(user_id)] == [other.session.id]
    assert await world.service.revoke_user(user_id, "logout_all") == 1
    assert await world.service.sessions(user_id) == []
    assert world.events.take()[2:] == [
        ("revoked", "logout"),
        ("refresh", "invalid"),
        ("revoked", "logout_all"),
    ]


async def test_removing_a_user_revokes_its_sessions_through_the_service(world: World) -> None:
    grant = await world.service.login("alice", "secret")
    assert await world.core.users.remove("ALICE") is True
    assert await world.core.users.remove("alice") is False
    assert grant.session.id in world.core.revocations
    assert world.events.take()[1:] == [("revoked", "admin")]


async def test_renewal_is_refused_once_the_session_is_not_live(world: World) -> None:
    grant = await world.service.login("alice", "secret")
    claims = {"exp": world.clock() + 30, "sid": grant.session.id, "jti": "j1", "scope": grant.scope}
    assert await world.service.renew(claims) is not None
    await world.core.store.revoke_session(grant.session.id, "admin", world.clock())  # elsewhere
    assert await world.service.renew({**claims, "jti": "j2"}) is None
    assert world.events.take()[1:] == [("renewal", "ok")]


def _record(**changes: object) -> SessionRecord:
    base = SessionRecord(
        id="s", user_id="u", username="alice", counter=0, scope="api", client_id="c",
        auth_time=0.0, created_at=0.0, last_used_at=0.0, rotated_at=0.0,
        idle_expires_at=100.0, expires_at=200.0,
    )
    return base.with_(**changes)


def test_a_record_is_live_until_revoked_or_either_deadline() -> None:
    assert _record().is_live(99.9)
    assert not _record().is_live(100.0)  # idle deadline reached
    assert not _record(idle_expires_at=300.0).is_live(200.0)  # absolute deadline reached
    assert _record(idle_expires_at=300.0).is_live(199.9)
    assert not _record(revoked_at=1.0).is_live(0.0)
