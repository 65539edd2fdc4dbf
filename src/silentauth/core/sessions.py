"""The session service: login, refresh with rotation, revocation, renewal.

Refresh is one compare-and-swap in the store (:meth:`Store.rotate`), and its
outcome is decided from the row the swap leaves behind:

- swapped                                    -> ``rotated``
- counter is ahead                           -> the rotation rule decides
  (:mod:`silentauth.core.rotation_rules`): ``grace`` (a token of the live
  lineage again) or ``reuse_detected`` (revoke all)
- revoked or unknown                         -> ``invalid``
- past idle or absolute expiry               -> ``expired``

Because the grace answer re-derives the token for ``counter + 1``, racing or
retried refreshes converge on one token and the session never forks.

Refreshes that arrive in the same event-loop turn swap together
(:meth:`Store.rotate_many`: one transaction on SQLite and PostgreSQL, one
pipeline on Redis) and are judged in
arrival order, so two racers in one batch still come out ``rotated`` + ``grace``.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple, cast

from silentauth.clock import Clock
from silentauth.core.batch import Batcher
from silentauth.core.events import NoEvents, RefreshOutcome, RevokeReason, SessionEvents
from silentauth.core.keys import KeyRing
from silentauth.core.passwords import Passwords, normalize_username
from silentauth.core.policy import LifetimePolicy
from silentauth.core.ports import RotateRequest, RotateResult, SessionRecord, Store
from silentauth.core.ratelimit import LocalCounters, RateLimiter
from silentauth.core.refresh import RefreshTokens
from silentauth.core.revoked import RevokedSessions
from silentauth.core.rotation_rules import RuleName, judge
from silentauth.core.tokens import mint, new_jti
from silentauth.errors import (
    InvalidGrant,
    InvalidScope,
    RateLimited,
    TemporarilyUnavailable,
)
from silentauth.settings import Settings

# What a grant was handed out after: a login, a rotation, or a grace-window repeat.
GrantOutcome = Literal["ok", "rotated", "grace"]


class _Refresh(NamedTuple):
    """A refresh that passed the checks needing no store, waiting for its batch."""

    session_id: str
    counter: int
    scope: str | None
    ip: str


@dataclass(frozen=True)
class Grant:
    """What a successful login or refresh hands out."""

    access_token: str
    expires_in: int
    refresh_token: str
    scope: str
    session: SessionRecord
    outcome: GrantOutcome = "ok"


class SessionService:
    """Everything the token service does, free of HTTP and SQL.

    Every argument is named: with this many collaborators, a swapped position
    would otherwise go unnoticed until run time.
    ``keyring`` is a callable because the ring is replaced when keys reload.
    """

    def __init__(
        self,
        *,
        settings: Settings,
        store: Store,
        keyring: Callable[[], KeyRing],
        refresh_tokens: RefreshTokens,
        passwords: Passwords,
        revocations: RevokedSessions,
        clock: Clock,
        policy: LifetimePolicy | None = None,
        events: SessionEvents | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.keyring = keyring
        self.refresh_tokens = refresh_tokens
        self.passwords = passwords
        self.revocations = revocations
        self.clock = clock
        self.policy = policy or LifetimePolicy(settings)
        self.events: SessionEvents = events if events is not None else NoEvents()
        self._login_pair = RateLimiter(store, settings.rate_limit_login)
        # One address may front many users (NAT): it gets ten times the allowance.
        self._login_ip = RateLimiter(store, settings.rate_limit_login, scale=10)
        # Refresh limits count per instance: they guard this instance's database
        # writes and must not add store round trips to the hot path. (Guessing a
        # refresh token is hopeless anyway: the MAC is checked before the store.)
        local = LocalCounters()
        self._refresh_session = RateLimiter(local, settings.rate_limit_refresh)
        self._refresh_fail_ip = RateLimiter(local, settings.rate_limit_refresh, scale=10)
        self._renewals: dict[str, tuple[float, asyncio.Future[str | None]]] = {}
        # Concurrent refreshes rotate in one store call and sign back to back.
        self._rotations: Batcher[_Refresh, Grant] = Batcher(self._rotate_batch, on_batch=self.events.on_batch)

    # -- tokens ----------------------------------------------------------------

    def _scope(self, requested: str | None, granted: str) -> str:
        if requested is None or not requested.strip():
            return granted
        wanted = requested.split()
        if len(requested) > 1024 or not set(wanted) <= set(granted.split()):
            raise InvalidScope()
        return " ".join(dict.fromkeys(wanted))

    def mint_access(
        self, session: SessionRecord, scope: str, now: float, first: bool = False
    ) -> tuple[str, int]:
        key = self.keyring().signing_key(now)
        if key is None:
            raise TemporarilyUnavailable("No signing key is available.")
        exp = self.policy.access_expiry(scope, now, session.expires_at, first)
        claims: dict[str, Any] = {
            "iss": self.settings.issuer,
            "sub": session.user_id,
            "aud": self.settings.audience,
            "exp": exp,
            "iat": int(now),
            "jti": new_jti(),
            "sid": session.id,
            "scope": scope,
            "auth_time": int(session.auth_time),
            "client_id": session.client_id,
            "preferred_username": session.username,
        }
        return mint(key, claims), max(0, exp - int(now))

    def _grant(
        self, session: SessionRecord, counter: int, scope: str, now: float, outcome: GrantOutcome
    ) -> Grant:
        access, expires_in = self.mint_access(session, scope, now, first=counter == 0)
        return Grant(access, expires_in, self.refresh_tokens.issue(session.id, counter), scope, session, outcome)

    # -- login -----------------------------------------------------------------

    async def login(
        self,
        username: str,
        password: str,
        *,
        scope: str | None = None,
        client_id: str = "silentauth",
        user_agent: str = "",
        ip: str = "",
    ) -> Grant:
        now = self.clock()
        name = normalize_username(username)
        pair_key, ip_key = f"login:{name}:{ip}", f"login-ip:{ip}"
        try:
            async with self._login_pair.attempt(pair_key, now), self._login_ip.attempt(ip_key, now):
                user = await self.store.get_user(name)
                ok = await self.passwords.verify(user.password_hash if user else None, password)
                if user is None or not ok:
                    # Only failures count: a user who logs in often is not an attacker.
                    await self._login_pair.record(pair_key, now)
                    await self._login_ip.record(ip_key, now)
                    self.events.on_login("bad_credentials")
                    raise InvalidGrant("Invalid user name or password.")
        except RateLimited:
            self.events.on_login("rate_limited")
            raise
        granted = self._scope(scope, self.settings.scope)
        expires_at = self.policy.session_expiry(now)
        session = SessionRecord(
            id=secrets.token_urlsafe(16),
            user_id=user.id,
            username=user.username,
            counter=0,
            scope=granted,
            client_id=client_id[:128],
            auth_time=now,
            created_at=now,
            last_used_at=now,
            rotated_at=now,
            idle_expires_at=min(self.policy.idle_deadline(now), expires_at),
            expires_at=expires_at,
            user_agent=user_agent[:512],
            ip=ip[:64],
        )
        await self.store.create_session(session)
        self.events.on_login("ok")
        return self._grant(session, 0, granted, now, "ok")

    # -- refresh ---------------------------------------------------------------

    def session_of(self, refresh_token: str) -> str:
        """The session id of an authentic refresh token (no store access)."""
        return self.refresh_tokens.parse(refresh_token)[0]

    async def refresh(self, refresh_token: str, *, scope: str | None = None, ip: str = "") -> Grant:
        """Rotate ``refresh_token``: a new access and refresh token, or InvalidGrant.

        Checks that need no store happen here, per call; the rotation itself
        joins the calls made in the same event-loop turn (:mod:`silentauth.core.batch`).
        """
        now = self.clock()
        await self._refresh_fail_ip.check(f"refresh-fail:{ip}", now)
        try:
            session_id, counter = self.refresh_tokens.parse(refresh_token)
        except InvalidGrant:
            await self._fail("invalid", ip, now)
            raise
        await self._refresh_session.check(f"refresh:{session_id}", now)
        if scope is not None and scope.strip():
            # A refused scope must not burn the token: judge it before rotating.
            current = await self.store.get_session(session_id)
            if current is not None:
                try:
                    self._scope(scope, current.scope)
                except InvalidScope:
                    self.events.on_refresh("invalid")
                    raise
        return await self._rotations.submit(_Refresh(session_id, counter, scope, ip))

    async def _rotate_batch(self, batch: list[_Refresh]) -> list[Grant | BaseException]:
        now = self.clock()
        results = await self.store.rotate_many(
            [RotateRequest(r.session_id, r.counter, self.policy.idle_deadline(now)) for r in batch], now
        )
        outcomes: list[Grant | BaseException] = []
        for request, result in zip(batch, results, strict=True):
            try:
                outcomes.append(await self._settle(request, result, now))
            except Exception as exc:  # this caller's answer alone; the batch goes on
                outcomes.append(exc)
        return outcomes

    async def _settle(self, r: _Refresh, result: RotateResult, now: float, depth: int = 0) -> Grant:
        """Judge one compare-and-swap (see the module docstring)."""
        s = result.session
        if result.swapped and s is not None:
            await self._refresh_session.record(f"refresh:{r.session_id}", now)
            return self._finish(s, r.counter + 1, r.scope, now, "rotated")
        if s is None or s.revoked_at is not None:
            await self._fail("invalid", r.ip, now)
            raise InvalidGrant("The refresh token is invalid or revoked.")
        if s.is_expired(now):
            await self._fail("expired", r.ip, now)
            raise InvalidGrant("The session has expired; log in again.")
        if s.counter > r.counter:
            rule = cast(RuleName, self.settings.rotation_rule)
            verdict = judge(rule, r.counter, s, now, self.settings.reuse_grace)
            if verdict.action == "grace":
                # A concurrent or retried refresh: a token of the one live lineage again.
                return self._finish(s, verdict.counter, r.scope, now, "grace")
            if verdict.action == "late" and depth == 0:
                # Skip a generation so the unused successor dies (rotation_rules.py).
                idle = self.policy.idle_deadline(now)
                swaps = await self.store.rotate_many(
                    [RotateRequest(r.session_id, s.counter, idle), RotateRequest(r.session_id, s.counter + 1, idle)],
                    now,
                )
                last = swaps[-1]
                if swaps[0].swapped and last.swapped and last.session is not None:
                    return self._finish(last.session, verdict.counter, r.scope, now, "grace")
                # Someone moved the counter meanwhile: judge against the row as it is now.
                return await self._settle(r, RotateResult(False, last.session), now, depth + 1)
            await self.revoke(r.session_id, "reuse")
            await self._fail("reuse_detected", r.ip, now)
            raise InvalidGrant("The refresh token was already used; the session is revoked.")
        # A counter ahead of the store: only a restored (older) database does this.
        await self._fail("invalid", r.ip, now)
        raise InvalidGrant("The refresh token is invalid.")

    def _finish(
        self, s: SessionRecord, counter: int, scope: str | None, now: float, outcome: Literal["rotated", "grace"]
    ) -> Grant:
        try:
            narrowed = self._scope(scope, s.scope)
        except InvalidScope:
            self.events.on_refresh("invalid")
            raise
        self.events.on_refresh(outcome)
        return self._grant(s, counter, narrowed, now, outcome)

    async def _fail(self, outcome: RefreshOutcome, ip: str, now: float) -> None:
        self.events.on_refresh(outcome)
        await self._refresh_fail_ip.record(f"refresh-fail:{ip}", now)

    # -- revocation ------------------------------------------------------------

    async def revoke(self, session_id: str, reason: RevokeReason) -> bool:
        """End a session: its refresh token dies and its access tokens too."""
        self.revocations.add(session_id)
        done = await self.store.revoke_session(session_id, reason, self.clock())
        if done:
            self.events.on_revoke(reason)
        return done

    async def revoke_user(self, user_id: str, reason: RevokeReason) -> int:
        """End every session of ``user_id``; return how many were live."""
        ids = await self.store.revoke_user_sessions(user_id, reason, self.clock())
        for sid in ids:
            self.revocations.add(sid)
            self.events.on_revoke(reason)
        return len(ids)

    async def revoke_owned(self, user_id: str, session_id: str, reason: RevokeReason) -> bool:
        """Revoke ``session_id`` if it belongs to ``user_id`` (device log-out)."""
        s = await self.store.get_session(session_id)
        if s is None or s.user_id != user_id:
            return False
        await self.revoke(session_id, reason)
        return True

    async def sessions(self, user_id: str) -> list[SessionRecord]:
        """The live sessions of ``user_id`` (one per device logged in)."""
        now = self.clock()
        return [s for s in await self.store.list_sessions(user_id) if s.is_live(now)]

    # -- renewal ---------------------------------------------------------------

    async def renew(self, claims: dict[str, Any]) -> str | None:
        """A fresh access token for a live session whose token is about to expire.

        Concurrent calls with the same token share one result (keyed by ``jti``).
        Never extends past the session's absolute limit; never for a revoked one.
        """
        now = self.clock()
        within = self.settings.renew_within
        if within <= 0 or claims["exp"] - now >= within or claims["sid"] in self.revocations:
            return None
        jti = str(claims["jti"])
        entry = self._renewals.get(jti)
        if entry is not None:
            return await asyncio.shield(entry[1])
        if len(self._renewals) > 10_000:
            self._renewals = {k: v for k, v in self._renewals.items() if v[0] > now}
        fut: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        self._renewals[jti] = (float(claims["exp"]), fut)
        try:
            token = await self._renew(claims, now)
        except BaseException as exc:
            del self._renewals[jti]
            fut.set_exception(exc)
            fut.exception()  # mark retrieved: waiters re-raise it themselves
            raise
        fut.set_result(token)
        if token is not None:
            self.events.on_renewal()
        return token

    async def _renew(self, claims: dict[str, Any], now: float) -> str | None:
        s = await self.store.get_session(str(claims["sid"]))
        if s is None or not s.is_live(now):
            return None
        if int(s.expires_at) <= claims["exp"]:
            return None  # already at the absolute limit: renewal cannot help
        token, _ = self.mint_access(s, str(claims["scope"]), now)
        return token
