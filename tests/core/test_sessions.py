"""The session service on its own: a real SQLite file, a fake clock, no HTTP.

Every outcome of login and refresh (module docstring of
:mod:`silentauth.core.sessions`) is driven here through :class:`TokenCore`,
and the events the service reports are recorded by a plain implementation of
:class:`~silentauth.core.events.SessionEvents`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from silentauth.clock import FakeClock
from silentauth.core.assembly import TokenCore
from silentauth.core.events import LoginOutcome, RefreshOutcome, RevokeReason
from silentauth.core.hooks import Lifetimes, TokenContext
from silentauth.core.identity import Identity, RequestInfo
from silentauth.core.keys import KeyRing
from silentauth.core.passwords import Passwords
from silentauth.core.ports import RotateRequest, RotateResult, SessionRecord
from silentauth.core.rotation_rules import RETRY_WINDOW
from silentauth.core.sessions import SessionService
from silentauth.errors import (
    IdentityUnavailable,
    InvalidClaims,
    InvalidGrant,
    InvalidRequest,
    InvalidScope,
    InvalidTarget,
    RateLimited,
    TemporarilyUnavailable,
)
from silentauth.settings import Rate, Settings
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


def fast_core(settings: Settings, store: Any, clock: FakeClock, events: Recorder, **hooks: Any) -> TokenCore:
    """A core on ``store`` with a cheap password hash, the recorder and the fake clock."""
    return TokenCore(
        settings=settings,
        store=store,
        clock=clock,
        passwords=Passwords(time_cost=1, memory_cost=1024, parallelism=1),
        events=events,
        **hooks,
    )


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
    core = fast_core(settings, SQLiteStore(settings.database_url), clock, events)
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


# --- the rules in detail (each kills mutants that every test above survived) ---


class Directory:
    """An identity provider over a dict: user name -> identity (any password)."""

    def __init__(self, **users: Identity) -> None:
        self.users = users
        self.down = False
        self.requests: list[RequestInfo] = []

    async def authenticate(self, username: str, password: str, request: RequestInfo) -> Identity | None:
        self.requests.append(request)
        if self.down:
            raise ConnectionError("directory down")
        return self.users.get(username)


WORLD_SETTINGS: dict[str, Any] = {
    "secret_key": "core-test-secret-with-at-least-32-bytes",
    "access_ttl": 300,
    "refresh_idle_ttl": IDLE,
    "session_max_age": MAX_AGE,
    "reuse_grace": GRACE,
    "ttl_jitter": 0.0,
    "first_token_spread": 0.0,
    "rate_limit_login": None,
    "rate_limit_refresh": None,
    "issuer": "https://auth.example",
}


@contextlib.asynccontextmanager
async def core_with(
    tmp_path: Path,
    *,
    identity: Directory | None = None,
    claims: Any = None,
    lifetimes: Any = None,
    **overrides: Any,
) -> AsyncIterator[World]:
    """A world like the fixture's, with other settings, an identity provider or hooks."""
    settings = Settings(**{**WORLD_SETTINGS, "database_url": f"sqlite:///{tmp_path / 'core.db'}", **overrides})
    clock = FakeClock(1_800_000_000.0)
    events = Recorder()
    core = fast_core(
        settings,
        SQLiteStore(settings.database_url),
        clock,
        events,
        identity=identity,
        claims=claims,
        lifetimes=lifetimes,
    )
    await core.store.open()
    try:
        await core.start()
        if identity is None:
            await core.users.add("Alice", "secret")
        yield World(core, clock, events)
    finally:
        await core.store.close()


def payload(token: str) -> dict[str, Any]:
    """The claims of a token this service signed (its signature is checked elsewhere)."""
    segment = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))))


async def test_an_access_token_carries_the_session_and_the_registered_claims_win(tmp_path: Path) -> None:
    async def claims(context: TokenContext) -> dict[str, Any]:
        return {"roles": ["admin"], "tenant": context.user_id}

    async with core_with(tmp_path, claims=claims) as w:
        w.clock.advance(0.75)
        grant = await w.service.login("alice", "secret", client_id="app")
        now = w.clock()
        body = payload(grant.access_token)
        assert body == {
            "roles": ["admin"],
            "tenant": grant.session.user_id,
            "iss": "https://auth.example",
            "sub": grant.session.user_id,
            "aud": "silentauth",
            "exp": int(now) + 300,
            "iat": int(now),
            "jti": body["jti"],
            "sid": grant.session.id,
            "scope": "profile api",
            "auth_time": int(now),
            "client_id": "app",
            "preferred_username": "alice",
        }
        assert grant.expires_in == 300 and grant.scope == "profile api"


async def test_extra_claims_given_to_mint_access_cannot_override_a_registered_claim(world: World) -> None:
    grant = await world.service.login("alice", "secret")
    token, _ = world.service.mint_access(
        grant.session, "api", world.clock(), extra={"sub": "someone-else", "scope": "admin", "x": 1}
    )
    body = payload(token)
    assert (body["sub"], body["scope"], body["x"]) == (grant.session.user_id, "api", 1)


async def test_start_session_trims_what_the_client_says_about_itself(tmp_path: Path) -> None:
    async with core_with(tmp_path) as w:
        grant = await w.service.start_session(
            Identity("u-1", "n" * 300), client_id="c" * 200, user_agent="a" * 600, ip="1" * 100
        )
        s = await w.session(grant.refresh_token)
        assert (len(s.username), len(s.client_id), len(s.user_agent), len(s.ip)) == (256, 128, 512, 64)
        assert (s.user_id, s.counter, s.scope) == ("u-1", 0, "profile api")
        named = (await w.service.start_session(Identity("u-2"))).session
        assert named.username == "u-2"
        assert (named.client_id, named.user_agent, named.ip, named.resources) == ("silentauth", "", "", "")
        assert len(named.id) == 22  # 128 random bits, base64url


async def test_start_session_refuses_an_invalid_user_id(tmp_path: Path) -> None:
    async with core_with(tmp_path) as w:
        with pytest.raises(InvalidRequest, match=r"^The user id must be 1-256 printable characters\.$"):
            await w.service.start_session(Identity(""))


async def test_remember_me_picks_the_long_lifetime_and_its_absence_the_short_one(tmp_path: Path) -> None:
    async with core_with(tmp_path, short_session_max_age=600) as w:
        now = w.clock()
        for remember, max_age in ((None, MAX_AGE), (True, MAX_AGE), (False, 600)):
            s = (await w.service.start_session(Identity("u"), remember=remember)).session
            assert s.expires_at == now + max_age
            # The idle deadline never lies past the absolute one.
            assert s.idle_expires_at == now + min(IDLE, max_age)
            assert (s.auth_time, s.created_at, s.last_used_at, s.rotated_at) == (now, now, now, now)


async def test_a_lifetime_hook_sets_the_session_age_even_without_remember_me(tmp_path: Path) -> None:
    async def lifetimes(context: TokenContext) -> Lifetimes:
        return Lifetimes(session_max_age=120, access_ttl=60)

    async with core_with(tmp_path, lifetimes=lifetimes) as w:
        grant = await w.service.start_session(Identity("u"), remember=False)
        assert grant.session.expires_at == w.clock() + 120
        assert grant.expires_in == 60


async def test_a_session_without_refresh_gets_no_refresh_token_and_cannot_refresh(tmp_path: Path) -> None:
    kiosk = False

    async def lifetimes(context: TokenContext) -> Lifetimes:
        return Lifetimes(refresh=not kiosk)

    async with core_with(tmp_path, lifetimes=lifetimes) as w:
        normal = await w.service.login("alice", "secret")
        kiosk = True
        assert (await w.service.login("alice", "secret")).refresh_token == ""
        w.events.take()
        with pytest.raises(InvalidGrant, match=r"^Sessions of this client do not refresh; log in again\.$"):
            await w.service.refresh(normal.refresh_token)
        assert w.events.take() == [("refresh", "invalid")]
        kiosk = False
        assert (await w.service.refresh(normal.refresh_token)).outcome == "rotated"  # not burnt


@pytest.mark.parametrize(("limit", "single", "live"), [(0, False, 4), (2, False, 2), (0, True, 1)])
async def test_the_session_limit_ends_the_oldest_sessions(
    tmp_path: Path, limit: int, single: bool, live: int
) -> None:
    async with core_with(tmp_path, max_sessions_per_user=limit, single_session=single) as w:
        grants = []
        for _ in range(4):
            grants.append(await w.service.start_session(Identity("u")))
            w.clock.advance(1)
        kept = [s.id for s in sorted(await w.service.sessions("u"), key=lambda s: s.created_at)]
        assert kept == [g.session.id for g in grants[4 - live:]]
        ended = [e for e in w.events.take() if e[0] == "revoked"]
        assert ended == [("revoked", "policy")] * (4 - live)
        assert all(g.session.id in w.core.revocations for g in grants[: 4 - live])


async def test_revoke_owned_ends_only_the_callers_own_session(tmp_path: Path) -> None:
    async with core_with(tmp_path) as w:
        mine = await w.service.start_session(Identity("u"))
        other = await w.service.start_session(Identity("v"))
        assert await w.service.revoke_owned("u", other.session.id, "logout") is False
        assert await w.service.revoke_owned("u", "no-such-session", "logout") is False
        assert [s.id for s in await w.service.sessions("v")] == [other.session.id]
        assert await w.service.revoke_owned("u", mine.session.id, "logout") is True
        assert await w.service.sessions("u") == []
        stored = await w.core.store.get_session(mine.session.id)
        assert stored is not None and stored.revoked_reason == "logout"


async def test_a_password_change_ends_every_other_session_and_counts_them(tmp_path: Path) -> None:
    async with core_with(tmp_path) as w:
        ids = [(await w.service.start_session(Identity("u"))).session.id for _ in range(4)]
        await w.service.revoke(ids[1], "logout")
        assert await w.service.password_changed("u", keep_session=ids[0]) == 2
        assert [s.id for s in await w.service.sessions("u")] == [ids[0]]
        assert await w.service.password_changed("u") == 1
        assert w.events.take()[-3:] == [("revoked", "password_change")] * 3


async def test_revoke_user_counts_and_reports_each_live_session(tmp_path: Path) -> None:
    async with core_with(tmp_path) as w:
        ids = [(await w.service.start_session(Identity("u"))).session.id for _ in range(2)]
        w.events.take()
        assert await w.service.revoke_user("u", "admin") == 2
        assert all(sid in w.core.revocations for sid in ids)
        stored = [await w.core.store.get_session(sid) for sid in ids]
        assert [s.revoked_reason if s else None for s in stored] == ["admin", "admin"]
        assert w.events.take() == [("revoked", "admin"), ("revoked", "admin")]
        assert await w.service.revoke_user("u", "admin") == 0


async def test_a_refresh_for_another_client_is_refused_without_burning_the_token(world: World) -> None:
    grant = await world.service.login("alice", "secret", client_id="app")
    world.events.take()
    with pytest.raises(InvalidGrant, match=r"^The refresh token was issued to another client\.$"):
        await world.service.refresh(grant.refresh_token, client_id="other")
    assert world.events.take() == [("refresh", "invalid")]
    assert (await world.service.refresh(grant.refresh_token, client_id="app")).outcome == "rotated"


async def test_a_refresh_may_narrow_the_scope_but_never_widen_it(world: World) -> None:
    grant = await world.service.login("alice", "secret")
    narrowed = await world.service.refresh(grant.refresh_token, scope=" api  api ")
    assert narrowed.scope == "api" and payload(narrowed.access_token)["scope"] == "api"
    # The session keeps its scope: the next refresh without one gets all of it.
    full = await world.service.refresh(narrowed.refresh_token, scope="  ")
    assert full.scope == "profile api"
    world.events.take()
    for wanted in ("admin", "api " * 300):
        with pytest.raises(InvalidScope):
            await world.service.refresh(full.refresh_token, scope=wanted)
    assert world.events.take() == [("refresh", "invalid"), ("refresh", "invalid")]
    assert (await world.service.refresh(full.refresh_token)).outcome == "rotated"  # not burnt


async def test_a_login_may_ask_for_less_scope_in_the_order_given(world: World) -> None:
    grant = await world.service.login("alice", "secret", scope="api profile api")
    assert grant.scope == "api profile" and grant.session.scope == "api profile"


async def test_a_refresh_token_that_fails_its_mac_is_invalid(world: World) -> None:
    grant = await world.service.login("alice", "secret")
    world.events.take()
    forged = grant.refresh_token[:-2] + ("AA" if grant.refresh_token[-2:] != "AA" else "BB")
    with pytest.raises(InvalidGrant):
        await world.service.refresh(forged)
    assert world.events.take() == [("refresh", "invalid")]


async def test_forged_refresh_tokens_are_limited_per_address_genuine_ones_per_session(tmp_path: Path) -> None:
    async with core_with(tmp_path, rate_limit_refresh=Rate(2, 60)) as w:
        grant = await w.service.login("alice", "secret")
        for _ in range(20):  # ten times the allowance: one address may front many clients
            with pytest.raises(InvalidGrant):
                await w.service.refresh("v1.forged", ip="10.0.0.9")
        with pytest.raises(RateLimited):
            await w.service.refresh("v1.forged", ip="10.0.0.9")
        grant = await w.service.refresh(grant.refresh_token, ip="10.0.0.9")  # its own count
        grant = await w.service.refresh(grant.refresh_token, ip="10.0.0.9")
        with pytest.raises(RateLimited):
            await w.service.refresh(grant.refresh_token, ip="10.0.0.9")
        with pytest.raises(InvalidGrant):  # another address is not limited by this one's forgeries
            await w.service.refresh("v1.forged", ip="10.0.0.10")


async def test_a_token_ahead_of_the_store_is_invalid(world: World) -> None:
    grant = await world.service.login("alice", "secret")
    ahead = world.core.refresh_tokens.issue(grant.session.id, 5)
    world.events.take()
    with pytest.raises(InvalidGrant, match=r"^The refresh token is invalid\.$"):
        await world.service.refresh(ahead)
    assert world.events.take() == [("refresh", "invalid")]


async def test_login_events_name_the_outcome(tmp_path: Path) -> None:
    directory = Directory(alice=Identity("u-alice", "alice"))
    async with core_with(tmp_path, identity=directory, rate_limit_login=Rate(2, 60)) as w:
        directory.down = True
        with pytest.raises(IdentityUnavailable):
            await w.service.login("alice", "x", ip="10.0.0.1")
        directory.down = False
        for _ in range(2):
            with pytest.raises(InvalidGrant, match=r"^Invalid user name or password\.$"):
                await w.service.login("bob", "x", ip="10.0.0.1")
        with pytest.raises(RateLimited):
            await w.service.login("bob", "x", ip="10.0.0.1")
        grant = await w.service.login("alice", "x", ip="10.0.0.1")
        assert grant.device_token != ""
        assert w.events.take() == [
            ("login", "unavailable"),
            ("login", "bad_credentials"),
            ("login", "bad_credentials"),
            ("login", "rate_limited"),
            ("login", "ok"),
        ]


async def test_a_known_device_keeps_its_own_login_allowance(tmp_path: Path) -> None:
    async with core_with(tmp_path, rate_limit_login=Rate(2, 60)) as w:
        device = (await w.service.login("alice", "secret", ip="10.0.0.1")).device_token
        for _ in range(2):  # an attacker at the same address exhausts (alice, address)
            with pytest.raises(InvalidGrant):
                await w.service.login("alice", "guess", ip="10.0.0.1")
        with pytest.raises(RateLimited):
            await w.service.login("alice", "secret", ip="10.0.0.1")
        again = await w.service.login("alice", "secret", ip="10.0.0.1", device_token=device)
        # The same device keeps its id in the renewed device token.
        assert again.device_token.split(".")[1] == device.split(".")[1]


async def test_renewal_only_near_expiry_and_only_below_the_session_limit(world: World) -> None:
    grant = await world.service.login("alice", "secret")
    now = world.clock()
    claims = {"exp": now + 60, "sid": grant.session.id, "jti": "j1", "scope": grant.scope}
    assert await world.service.renew(claims) is None  # 60 s left: not within renew_within
    renewed = await world.service.renew({**claims, "exp": now + 59})
    assert renewed is not None
    body = payload(renewed)
    assert (body["sid"], body["scope"], body["aud"], body["iat"]) == (grant.session.id, "profile api", "silentauth", int(now))
    assert await world.service.renew({**claims, "jti": "j4", "sid": "no-such-session"}) is None
    world.core.revocations.add(grant.session.id)
    assert await world.service.renew({**claims, "jti": "j5", "exp": now + 1}) is None
    assert world.events.take()[1:] == [("renewal", "ok")]


async def test_concurrent_renewals_of_one_token_share_one_answer(world: World) -> None:
    grant = await world.service.login("alice", "secret")
    claims = {"exp": world.clock() + 30, "sid": grant.session.id, "jti": "j1", "scope": grant.scope}
    first, second = await asyncio.gather(world.service.renew(claims), world.service.renew(claims))
    assert first is not None and first == second
    assert world.events.take()[1:] == [("renewal", "ok")]


async def test_a_failed_renewal_is_not_remembered(world: World) -> None:
    grant = await world.service.login("alice", "secret")
    body = {"exp": world.clock() + 30, "sid": grant.session.id, "jti": "j1", "scope": grant.scope}
    await world.core.store.close()
    with pytest.raises(Exception) as direct:  # the store's own error, whatever the backend
        await world.core.store.get_session(grant.session.id)
    with pytest.raises(type(direct.value)):  # passed on as it is, and to every waiter
        await world.service.renew(body)
    await world.core.store.open()
    assert await world.service.renew(body) is not None


async def test_a_failing_claims_hook_means_no_renewal(tmp_path: Path) -> None:
    async def claims(context: TokenContext) -> dict[str, Any]:
        if context.event == "renewal":
            raise RuntimeError("hook bug")
        return {}

    async with core_with(tmp_path, claims=claims) as w:
        grant = await w.service.login("alice", "secret")
        body = {"exp": w.clock() + 30, "sid": grant.session.id, "jti": "j1", "scope": grant.scope}
        assert await w.service.renew(body) is None  # logged by the hooks; the client refreshes


async def test_no_renewal_past_the_absolute_session_limit(tmp_path: Path) -> None:
    async with core_with(tmp_path, session_max_age=600, refresh_idle_ttl=600) as w:
        grant = await w.service.login("alice", "secret")
        end = grant.session.expires_at
        w.clock.set(end - 30)
        claims = {"exp": end - 1, "sid": grant.session.id, "jti": "j1", "scope": grant.scope}
        assert await w.service.renew(claims) is not None
        assert await w.service.renew({**claims, "jti": "j2", "exp": end}) is None


async def test_renewal_keeps_a_narrowed_audience(tmp_path: Path) -> None:
    resources = ("https://api.example", "https://files.example")
    async with core_with(tmp_path, resources=resources) as w:
        grant = await w.service.login("alice", "secret", resource="https://files.example")
        aud = payload(grant.access_token)["aud"]
        claims = {"exp": w.clock() + 30, "sid": grant.session.id, "jti": "j1", "scope": grant.scope, "aud": aud}
        renewed = await w.service.renew(claims)
        assert renewed is not None and payload(renewed)["aud"] == aud


class RecordingHooks:
    """Claims and lifetime hooks that answer per event and remember what they were asked."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, str, str, str]] = []
        self.ttl: dict[str, int] = {}
        self.who: tuple[str, str, str] = ("", "", "")

    async def claims(self, context: TokenContext) -> dict[str, Any]:
        self.asked.append(("claims", context.event, context.scope, context.session_id))
        self.who = (context.user_id, context.username, context.client_id)
        return {"seen_at": context.event}

    async def lifetimes(self, context: TokenContext) -> Lifetimes:
        self.asked.append(("lifetimes", context.event, context.scope, context.session_id))
        return Lifetimes(access_ttl=self.ttl.get(context.event))


async def test_the_hooks_are_asked_again_at_each_refresh_with_the_narrowed_scope(tmp_path: Path) -> None:
    hooks = RecordingHooks()
    hooks.ttl = {"login": 200, "refresh": 100}
    async with core_with(tmp_path, claims=hooks.claims, lifetimes=hooks.lifetimes) as w:
        grant = await w.service.login("alice", "secret")
        sid = grant.session.id
        assert hooks.asked == [("lifetimes", "login", "profile api", sid), ("claims", "login", "profile api", sid)]
        assert grant.expires_in == 200 and payload(grant.access_token)["seen_at"] == "login"
        assert hooks.who == (grant.session.user_id, "alice", "silentauth")
        hooks.asked.clear()
        refreshed = await w.service.refresh(grant.refresh_token, scope="api")
        assert hooks.asked == [("lifetimes", "refresh", "api", sid), ("claims", "refresh", "api", sid)]
        assert refreshed.expires_in == 100 and payload(refreshed.access_token)["seen_at"] == "refresh"


async def test_the_hooks_are_asked_at_renewal_and_their_answers_apply(tmp_path: Path) -> None:
    hooks = RecordingHooks()
    hooks.ttl = {"renewal": 45}
    async with core_with(tmp_path, claims=hooks.claims, lifetimes=hooks.lifetimes) as w:
        grant = await w.service.login("alice", "secret")
        hooks.asked.clear()
        claims = {"exp": w.clock() + 30, "sid": grant.session.id, "jti": "j1", "scope": "api"}
        renewed = await w.service.renew(claims)
        assert renewed is not None
        body = payload(renewed)
        assert (body["seen_at"], body["scope"], body["exp"]) == ("renewal", "api", int(w.clock()) + 45)
        sid = grant.session.id
        assert hooks.asked == [("lifetimes", "renewal", "api", sid), ("claims", "renewal", "api", sid)]


async def test_no_renewal_for_a_session_whose_hook_now_refuses_refresh(tmp_path: Path) -> None:
    refresh = True

    async def lifetimes(context: TokenContext) -> Lifetimes:
        return Lifetimes(refresh=refresh)

    async with core_with(tmp_path, lifetimes=lifetimes) as w:
        grant = await w.service.login("alice", "secret")
        refresh = False
        claims = {"exp": w.clock() + 30, "sid": grant.session.id, "jti": "j1", "scope": grant.scope}
        assert await w.service.renew(claims) is None


async def test_renewal_keeps_the_audience_a_refresh_narrowed(tmp_path: Path) -> None:
    resources = ("https://api.example", "https://files.example")
    async with core_with(tmp_path, resources=resources) as w:
        grant = await w.service.login("alice", "secret", resource=" ".join(resources))
        assert payload(grant.access_token)["aud"] == list(resources)
        narrowed = await w.service.refresh(grant.refresh_token, resource="https://files.example")
        aud = payload(narrowed.access_token)["aud"]
        assert aud == "https://files.example"
        claims = {"exp": w.clock() + 30, "sid": grant.session.id, "jti": "j1", "scope": grant.scope, "aud": aud}
        renewed = await w.service.renew(claims)
        assert renewed is not None and payload(renewed)["aud"] == aud


async def test_late_once_honours_a_rotated_token_once_by_skipping_a_generation(tmp_path: Path) -> None:
    async with core_with(tmp_path, rotation_rule="late_once") as w:
        t0 = await w.service.login("alice", "secret")
        sid = t0.session.id
        t1 = await w.service.refresh(t0.refresh_token)
        w.clock.advance(RETRY_WINDOW + 1)  # t1 never used; t0's answer was lost long ago
        w.events.take()
        late = await w.service.refresh(t0.refresh_token)
        assert late.outcome == "grace"
        assert w.core.refresh_tokens.parse(late.refresh_token) == (sid, 3)
        assert (await w.session(late.refresh_token)).counter == 3
        assert w.events.take() == [("refresh", "grace")]
        w.clock.advance(RETRY_WINDOW + 1)
        with pytest.raises(InvalidGrant, match="already used"):  # whoever holds t1 is refused
            await w.service.refresh(t1.refresh_token)


async def test_two_late_replays_racing_in_one_batch_get_one_token(tmp_path: Path) -> None:
    async with core_with(tmp_path, rotation_rule="late_once") as w:
        t0 = await w.service.login("alice", "secret")
        await w.service.refresh(t0.refresh_token)
        w.clock.advance(RETRY_WINDOW + 1)
        w.events.take()
        a, b = await asyncio.gather(w.service.refresh(t0.refresh_token), w.service.refresh(t0.refresh_token))
        assert w.events.batches[-1] == 2
        assert a.refresh_token == b.refresh_token
        assert w.core.refresh_tokens.parse(a.refresh_token) == (t0.session.id, 3)
        assert (await w.session(a.refresh_token)).counter == 3 and (await w.session(a.refresh_token)).revoked_at is None
        assert w.events.take() == [("refresh", "grace"), ("refresh", "grace")]


async def test_burst_answers_a_token_two_behind_with_the_current_one(world: World) -> None:
    t0 = await world.service.login("alice", "secret")
    t1 = await world.service.refresh(t0.refresh_token)
    t2 = await world.service.refresh(t1.refresh_token)
    again = await world.service.refresh(t0.refresh_token)
    assert again.outcome == "grace" and again.refresh_token == t2.refresh_token


async def test_a_refused_resource_does_not_burn_the_refresh_token(tmp_path: Path) -> None:
    async with core_with(tmp_path, resources=("https://api.example", "https://files.example")) as w:
        grant = await w.service.login("alice", "secret", resource="https://api.example")
        with pytest.raises(InvalidTarget):
            await w.service.refresh(grant.refresh_token, resource="https://files.example")
        assert (await w.service.refresh(grant.refresh_token)).outcome == "rotated"


async def test_the_hooks_are_not_asked_for_a_session_that_ended(tmp_path: Path) -> None:
    hooks = RecordingHooks()
    async with core_with(tmp_path, claims=hooks.claims, lifetimes=hooks.lifetimes) as w:
        grant = await w.service.login("alice", "secret")
        await w.service.revoke(grant.session.id, "logout")
        hooks.asked.clear()
        with pytest.raises(InvalidGrant, match="revoked"):
            await w.service.refresh(grant.refresh_token)
        assert hooks.asked == []


@pytest.mark.parametrize("failure", ["revoked", "expired", "ahead", "reuse"])
async def test_failed_refreshes_of_a_genuine_token_count_against_its_session(tmp_path: Path, failure: str) -> None:
    async with core_with(tmp_path, rate_limit_refresh=Rate(2, 60)) as w:
        grant = await w.service.login("alice", "secret")
        token = grant.refresh_token
        if failure == "revoked":
            await w.service.revoke(grant.session.id, "logout")
        elif failure == "expired":
            w.clock.advance(IDLE)
        elif failure == "ahead":
            token = w.core.refresh_tokens.issue(grant.session.id, 5)
        else:
            await w.service.refresh(token)
            w.clock.advance(RETRY_WINDOW + 1)
        for _ in range(2):
            with pytest.raises(InvalidGrant):
                await w.service.refresh(token)
        with pytest.raises(RateLimited):
            await w.service.refresh(token)
        # Each failure is counted at the time it happened: a minute later the session may try again.
        w.clock.advance(60)
        with pytest.raises(InvalidGrant):
            await w.service.refresh(token)


async def test_login_tells_the_provider_about_the_request_and_keeps_it_on_the_session(tmp_path: Path) -> None:
    directory = Directory(alice=Identity("u-alice", "alice"))
    async with core_with(tmp_path, identity=directory, short_session_max_age=600) as w:
        grant = await w.service.login("alice", "x", client_id="app", user_agent="curl/8", ip="10.0.0.1", remember=False)
        assert directory.requests == [RequestInfo(ip="10.0.0.1", user_agent="curl/8", client_id="app")]
        s = grant.session
        assert (s.client_id, s.user_agent, s.ip, s.expires_at) == ("app", "curl/8", "10.0.0.1", w.clock() + 600)
        plain = (await w.service.login("alice", "x")).session
        assert (plain.client_id, plain.user_agent, plain.ip) == ("silentauth", "", "")
        assert directory.requests[-1] == RequestInfo(ip="", user_agent="", client_id="silentauth")


async def test_without_a_signing_key_no_token_is_minted(world: World) -> None:
    grant = await world.service.login("alice", "secret")
    world.core.ring = KeyRing([], 360)
    with pytest.raises(TemporarilyUnavailable, match=r"^No signing key is available\.$"):
        world.service.mint_access(grant.session, "api", world.clock())


async def test_only_a_sessions_first_access_token_is_spread(tmp_path: Path) -> None:
    async with core_with(tmp_path, first_token_spread=0.5) as w:
        firsts = [(await w.service.login("alice", "secret")) for _ in range(8)]
        assert all(150 <= g.expires_in <= 300 for g in firsts) and min(g.expires_in for g in firsts) < 290
        later = await w.service.refresh(firsts[0].refresh_token)
        assert later.expires_in == 300
        claims = {"exp": w.clock() + 30, "sid": later.session.id, "jti": "j1", "scope": later.scope}
        renewed = await w.service.renew(claims)
        assert renewed is not None and payload(renewed)["exp"] == int(w.clock()) + 300


async def test_a_requested_scope_may_be_1024_characters_long_not_more(world: World) -> None:
    grant = await world.service.login("alice", "secret")
    longest = ("api " * 256)[:1024]
    assert len(longest) == 1024
    grant = await world.service.refresh(grant.refresh_token, scope=longest)
    assert grant.scope == "api"
    with pytest.raises(InvalidScope):
        await world.service.refresh(grant.refresh_token, scope=longest + " ")


@pytest.mark.parametrize(("within", "left", "renewed"), [(0, -1.0, False), (1, 0.5, True), (1, 1.0, False)])
async def test_renew_within_bounds_the_renewal_window(tmp_path: Path, within: int, left: float, renewed: bool) -> None:
    async with core_with(tmp_path, renew_within=within) as w:
        grant = await w.service.login("alice", "secret")
        claims = {"exp": w.clock() + left, "sid": grant.session.id, "jti": "j1", "scope": grant.scope}
        assert (await w.service.renew(claims) is not None) is renewed


async def test_the_service_runs_on_its_defaults_without_optional_collaborators(tmp_path: Path) -> None:
    async with core_with(tmp_path) as w:
        core = w.core
        service = SessionService(
            settings=core.settings,
            store=core.store,
            keyring=lambda: core.ring,
            refresh_tokens=core.refresh_tokens,
            passwords=core.passwords,
            revocations=core.revocations,
            clock=w.clock,
        )
        with pytest.raises(InvalidGrant):
            await service.login("alice", "wrong")
        grant = await service.login("alice", "secret")
        assert grant.device_token == "" and grant.expires_in == 300
        assert grant.session.expires_at == w.clock() + MAX_AGE
        assert (await service.refresh(grant.refresh_token)).outcome == "rotated"


async def test_a_token_minted_in_the_sessions_last_second_expires_in_zero(tmp_path: Path) -> None:
    async with core_with(tmp_path, session_max_age=600, refresh_idle_ttl=600) as w:
        w.clock.advance(0.7)
        grant = await w.service.login("alice", "secret")
        w.clock.set(grant.session.expires_at - 0.5)  # the same whole second as the end
        last = await w.service.refresh(grant.refresh_token)
        assert last.expires_in == 0
        assert payload(last.access_token)["exp"] == int(grant.session.expires_at)


@pytest.mark.parametrize(
    ("failure", "message"),
    [
        ("revoked", "The refresh token is invalid or revoked."),
        ("expired", "The session has expired; log in again."),
        ("reuse", "The refresh token was already used; the session is revoked."),
    ],
)
async def test_each_refused_refresh_says_why(world: World, failure: str, message: str) -> None:
    grant = await world.service.login("alice", "secret")
    if failure == "revoked":
        await world.service.revoke(grant.session.id, "logout")
    elif failure == "expired":
        world.clock.advance(IDLE)
    else:
        await world.service.refresh(grant.refresh_token)
        world.clock.advance(RETRY_WINDOW + 1)
    with pytest.raises(InvalidGrant) as refused:
        await world.service.refresh(grant.refresh_token)
    assert str(refused.value) == message


async def test_one_address_gets_ten_times_the_login_allowance_across_user_names(tmp_path: Path) -> None:
    async with core_with(tmp_path, rate_limit_login=Rate(2, 60)) as w:
        for i in range(20):  # one failure per name: no (name, address) pair is exhausted
            with pytest.raises(InvalidGrant):
                await w.service.login(f"user{i}", "guess", ip="10.0.0.7")
        with pytest.raises(RateLimited):
            await w.service.login("user-new", "guess", ip="10.0.0.7")
        await w.service.login("alice", "secret", ip="10.0.0.8")  # another address is not limited


async def test_a_known_device_has_a_login_allowance_of_its_own(tmp_path: Path) -> None:
    async with core_with(tmp_path, rate_limit_login=Rate(2, 60)) as w:
        device = (await w.service.login("alice", "secret", ip="10.0.0.1")).device_token
        for _ in range(2):
            with pytest.raises(InvalidGrant):
                await w.service.login("alice", "typo", ip="10.0.0.1", device_token=device)
        with pytest.raises(RateLimited):
            await w.service.login("alice", "secret", ip="10.0.0.1", device_token=device)


def test_session_ids_never_start_with_a_dash() -> None:
    # `silentauth sessions revoke -abc…` would read the id as an option.
    from silentauth.core.sessions import new_session_id

    ids = [new_session_id() for _ in range(5000)]
    assert not [i for i in ids if i.startswith("-")]
    assert len(set(ids)) == 5000 and all(len(i) == 22 for i in ids)


async def test_tokens_signed_in_one_batch_carry_each_their_own_session_claims(world: World) -> None:
    # The registered claims are spelled out per token and the session claims merged
    # per token: a session's claims never reach another session's token, whichever
    # order the batch signs them in.
    tenant = await world.service.start_session(Identity("u-a", "ann"), claims={"tenant": "a"})
    plain = await world.service.login("alice", "secret")
    other = await world.service.start_session(Identity("u-b", "bob"), claims={"tenant": "b", "roles": ["x"]})
    grants = await asyncio.gather(
        *(world.service.refresh(g.refresh_token) for g in (tenant, plain, other, tenant, plain))
    )
    assert [g.outcome for g in grants] == ["rotated", "rotated", "rotated", "grace", "grace"]
    bodies = [payload(g.access_token) for g in grants]
    assert [(b["sub"], b.get("tenant"), b.get("roles")) for b in bodies] == [
        ("u-a", "a", None),
        (plain.session.user_id, None, None),
        ("u-b", "b", ["x"]),
        ("u-a", "a", None),
        (plain.session.user_id, None, None),
    ]
    assert len({b["jti"] for b in bodies}) == 5
# --- two instances on one database: a rotation lands between a verdict and its swap ---


class InterposingStore(SQLiteStore):
    """A real SQLite store that runs one queued step before each ``rotate_many``.

    It stands for the moment another instance writes the row between this
    instance's reading of it and its own swap.
    """

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.before: list[Callable[[], Awaitable[None]] | None] = []

    async def rotate_many(self, requests: Sequence[RotateRequest], now: float) -> list[RotateResult]:
        if self.before and (step := self.before.pop(0)) is not None:
            await step()
        return await super().rotate_many(requests, now)


@contextlib.asynccontextmanager
async def two_instances(tmp_path: Path, **overrides: Any) -> AsyncIterator[tuple[World, World, InterposingStore]]:
    """Instance A (its store interposable) and instance B over one SQLite file, one clock."""
    settings = Settings(**{**WORLD_SETTINGS, "database_url": f"sqlite:///{tmp_path / 'core.db'}", **overrides})
    clock = FakeClock(1_800_000_000.0)
    interposing = InterposingStore(settings.database_url)
    worlds = []
    for store in (interposing, SQLiteStore(settings.database_url)):
        events = Recorder()
        core = fast_core(settings, store, clock, events)
        await store.open()
        await core.start()
        worlds.append(World(core, clock, events))
    try:
        await worlds[0].core.users.add("Alice", "secret")
        yield worlds[0], worlds[1], interposing
    finally:
        for world in worlds:
            await world.core.store.close()


async def test_a_late_honour_raced_by_another_instance_is_judged_again_on_the_row_as_it_is(tmp_path: Path) -> None:
    async with two_instances(tmp_path, rotation_rule="late_once") as (a, b, store):
        t0 = await a.service.login("alice", "secret")
        sid = t0.session.id
        t1 = await a.service.refresh(t0.refresh_token)
        a.clock.advance(RETRY_WINDOW + 1)  # t1 unused; t0's answer was lost long ago

        async def b_rotates_t1() -> None:
            nonlocal t2
            t2 = await b.service.refresh(t1.refresh_token)

        t2 = None
        store.before = [None, b_rotates_t1]  # A reads the row, judges "late"; B rotates; A swaps
        a.events.take()
        late = await a.service.refresh(t0.refresh_token)
        assert t2 is not None and t2.outcome == "rotated"
        # A's skip-a-generation swap found the counter moved: judged again, t0 is a
        # retry of the lineage B just advanced, answered with the live token.
        assert late.outcome == "grace"
        row = await a.session(late.refresh_token)
        assert row.revoked_at is None
        assert a.core.refresh_tokens.parse(late.refresh_token) == (sid, row.counter)
        assert a.events.take() == [("refresh", "grace")]


async def test_a_late_honour_raced_by_a_logout_on_another_instance_issues_nothing(tmp_path: Path) -> None:
    async with two_instances(tmp_path, rotation_rule="late_once") as (a, b, store):
        t0 = await a.service.login("alice", "secret")
        await a.service.refresh(t0.refresh_token)
        a.clock.advance(RETRY_WINDOW + 1)

        async def b_logs_out() -> None:
            assert await b.service.revoke(t0.session.id, "logout")

        store.before = [None, b_logs_out]  # A judges "late"; B revokes the session; A swaps
        with pytest.raises(InvalidGrant, match="invalid or revoked"):
            await a.service.refresh(t0.refresh_token)
        row = await a.session(t0.refresh_token)
        assert row.revoked_at is not None


# --- a keyed retry of a refresh whose answer was lost ---


async def test_a_keyed_retry_after_the_grace_window_gets_the_same_unused_successor(world: World) -> None:
    t0 = await world.service.login("alice", "secret")
    lost = await world.service.refresh(t0.refresh_token, idempotency_key="k" * 32)
    world.clock.advance(GRACE + 1)  # past grace: without the key this would be reuse
    world.events.take()
    again = await world.service.refresh(t0.refresh_token, idempotency_key="k" * 32)
    assert again.outcome == "retried"
    assert world.core.refresh_tokens.parse(again.refresh_token) == world.core.refresh_tokens.parse(lost.refresh_token)
    assert world.events.take() == [("refresh", "retried")]
    assert (await world.service.refresh(again.refresh_token)).outcome == "rotated"


@pytest.mark.parametrize("key", [None, "j" * 32])
async def test_a_retry_with_no_key_or_another_key_after_the_grace_window_is_reuse(world: World, key: str | None) -> None:
    t0 = await world.service.login("alice", "secret")
    lost = await world.service.refresh(t0.refresh_token, idempotency_key="k" * 32)
    world.clock.advance(GRACE + 1)
    with pytest.raises(InvalidGrant, match="already used"):
        await world.service.refresh(t0.refresh_token, idempotency_key=key)
    assert (await world.session(lost.refresh_token)).revoked_reason == "reuse"


async def test_a_key_does_not_save_a_token_two_generations_behind(world: World) -> None:
    t0 = await world.service.login("alice", "secret")
    t1 = await world.service.refresh(t0.refresh_token, idempotency_key="k" * 32)
    await world.service.refresh(t1.refresh_token, idempotency_key="k" * 32)
    world.clock.advance(GRACE + 1)
    with pytest.raises(InvalidGrant, match="already used"):
        await world.service.refresh(t0.refresh_token, idempotency_key="k" * 32)


# --- claims an application stores with the sessions it starts ---


async def test_claims_stored_with_a_session_go_into_every_access_token(world: World) -> None:
    claims = {"tenant": "acme", "amr": ["otp", "pwd"]}
    grant = await world.service.start_session(Identity("u-7", "bob"), claims=claims)
    assert {k: payload(grant.access_token)[k] for k in claims} == claims
    refreshed = await world.service.refresh(grant.refresh_token)
    assert {k: payload(refreshed.access_token)[k] for k in claims} == claims


@pytest.mark.parametrize("claims", [None, {}])
async def test_no_claims_or_an_empty_mapping_start_a_session_without_claims(world: World, claims: Any) -> None:
    grant = await world.service.start_session(Identity("u-7", "bob"), claims=claims)
    assert grant.session.claims == "" and "tenant" not in payload(grant.access_token)


@pytest.mark.parametrize(("claims", "kind"), [([], "list"), ("", "str"), (0, "int")])
async def test_empty_claims_that_are_not_a_mapping_are_refused_naming_the_type(
    world: World, claims: Any, kind: str
) -> None:
    with pytest.raises(InvalidClaims) as refused:
        await world.service.start_session(Identity("u-7", "bob"), claims=claims)
    assert refused.value.error_description == f"The session claims are {kind}, not a mapping."
    assert await world.service.sessions("u-7") == []


async def test_claims_over_the_configured_size_are_refused(tmp_path: Path) -> None:
    async with core_with(tmp_path, claims_max_bytes=64) as w:
        with pytest.raises(InvalidClaims, match="CLAIMS_MAX_BYTES"):
            await w.service.start_session(Identity("u-7", "bob"), claims={"blob": "x" * 64})
        grant = await w.service.start_session(Identity("u-7", "bob"), claims={"blob": "x" * 8})
        assert payload(grant.access_token)["blob"] == "x" * 8


async def test_refreshes_from_the_wrong_client_count_against_the_session(tmp_path: Path) -> None:
    async with core_with(tmp_path, rate_limit_refresh=Rate(2, 60)) as w:
        grant = await w.service.login("alice", "secret", client_id="app")
        other = await w.service.login("alice", "secret", client_id="app")
        for _ in range(2):
            with pytest.raises(InvalidGrant, match="issued to another client"):
                await w.service.refresh(grant.refresh_token, client_id="other", ip="10.0.0.9")
        with pytest.raises(RateLimited):  # the session's allowance is used up, whoever asks
            await w.service.refresh(grant.refresh_token, client_id="app", ip="10.0.0.1")
        # Another session at the address keeps its own allowance.
        other = await w.service.refresh(other.refresh_token, client_id="app", ip="10.0.0.9")
        assert other.outcome == "rotated"
        w.clock.advance(61)  # each failure counted at the time it happened
        assert (await w.service.refresh(grant.refresh_token, client_id="app")).outcome == "rotated"
