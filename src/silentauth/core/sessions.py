"""The session service: login, refresh with rotation, revocation, renewal.

Refresh is one compare-and-swap in the store (:meth:`Store.rotate`), and its
outcome is decided from the row the swap leaves behind:

- swapped                                    -> ``rotated``
- counter is one ahead, successor unused, and
  the request's Idempotency-Key is the one the
  rotation was made with                     -> ``retried`` (the same successor again,
  at any time: :mod:`silentauth.core.idempotency`)
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
import contextlib
import dataclasses
import json
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple, cast

from silentauth.clock import Clock
from silentauth.core import resources as rfc8707
from silentauth.core.batch import Batcher
from silentauth.core.devices import KnownDevices
from silentauth.core.events import NoEvents, RefreshOutcome, RevokeReason, SessionEvents
from silentauth.core.hooks import (
    DEFAULT_LIFETIMES,
    Lifetimes,
    TokenContext,
    TokenHooks,
    check_claims,
)
from silentauth.core.idempotency import key_hash, same_key
from silentauth.core.identity import (
    GuardedIdentity,
    Identity,
    LocalUsers,
    RequestInfo,
    valid_identity,
)
from silentauth.core.keys import KeyRing
from silentauth.core.passwords import Passwords, normalize_username
from silentauth.core.policy import LifetimePolicy
from silentauth.core.ports import RotateRequest, RotateResult, SessionRecord, Store
from silentauth.core.ratelimit import LocalCounters, RateLimiter
from silentauth.core.refresh import RefreshTokens
from silentauth.core.revoked import RevokedSessions
from silentauth.core.rotation_rules import RuleName, judge
from silentauth.core.tokens import access_claims, mint_json, new_jti, registered_claims
from silentauth.errors import (
    ClaimsUnavailable,
    IdentityUnavailable,
    InvalidClaims,
    InvalidGrant,
    InvalidRequest,
    InvalidScope,
    RateLimited,
    TemporarilyUnavailable,
)
from silentauth.settings import Settings

# What a grant was handed out after: a login, a rotation, or a grace-window repeat.
GrantOutcome = Literal["ok", "rotated", "grace", "retried"]


def new_session_id() -> str:
    """128 random bits, base64url, never starting with ``-``.

    An id starting with ``-`` reads as an option on a command line
    (``silentauth sessions revoke -mhJ…`` failed in CI), so such draws are redrawn.
    """
    while (sid := secrets.token_urlsafe(16)).startswith("-"):
        pass
    return sid


def encode_claims(claims: Mapping[str, Any] | None, max_bytes: int) -> str:
    """A new session's claims as the stores keep them (compact JSON; ``""`` for none).

    The same rules as the claims hook's answers; :class:`InvalidClaims` otherwise.
    """
    if not claims:
        if claims is not None and not isinstance(claims, Mapping):
            raise InvalidClaims(f"The session claims are {type(claims).__name__}, not a mapping.")
        return ""
    try:
        checked = check_claims(claims, max_bytes)
    except ValueError as exc:
        raise InvalidClaims(f"The session claims are refused: {exc}.") from None
    # No mutants: check_claims already refused NaN, and any separators json.loads reads back alike.
    return json.dumps(checked, allow_nan=False, separators=(",", ":"))  # pragma: no mutate


def session_claims(session: SessionRecord) -> dict[str, Any]:
    """The claims stored with ``session`` (``{}`` for none)."""
    if not session.claims:
        return {}
    value: dict[str, Any] = json.loads(session.claims)
    return value


class _Refresh(NamedTuple):
    """A refresh that passed the checks needing no store, waiting for its batch.

    ``extra`` and ``access_cap`` are the hooks' answers, asked before rotating
    so that a failing hook leaves the refresh token unused.
    """

    session_id: str
    counter: int
    scope: str | None
    extra: Mapping[str, Any] | None = None
    access_cap: int | None = None
    resource: str | None = None
    key_hash: str = ""


@dataclass(frozen=True)
class Grant:
    """What a successful login or refresh hands out."""

    access_token: str
    expires_in: int
    refresh_token: str
    scope: str
    session: SessionRecord
    outcome: GrantOutcome = "ok"
    # After a login: this device's proof for its next logins (core/devices.py).
    device_token: str = ""


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
        devices: KnownDevices | None = None,
        identity: GuardedIdentity | None = None,
        hooks: TokenHooks | None = None,
    ) -> None:
        self.settings = settings
        self.devices = devices
        self.store = store
        self.keyring = keyring
        self.refresh_tokens = refresh_tokens
        self.passwords = passwords  # pragma: no mutate - kept for callers; nothing here reads it
        self.revocations = revocations
        self.clock = clock
        self.policy = policy or LifetimePolicy(settings)
        self.events: SessionEvents = events if events is not None else NoEvents()
        self.identity = identity or GuardedIdentity(
            LocalUsers(store, passwords), timeout=settings.identity_timeout, builtin=True
        )
        self.hooks = hooks or TokenHooks(max_bytes=settings.claims_max_bytes)  # pragma: no mutate - without a claims hook max_bytes is never read
        self._login_pair = RateLimiter(store, settings.rate_limit_login)
        # One address may front many users (NAT): it gets ten times the allowance.
        self._login_ip = RateLimiter(store, settings.rate_limit_login, scale=10)
        # A device that logged in as this user before is judged by its own count
        # alone, so guessing from its address cannot lock its owner out.
        self._login_device = RateLimiter(store, settings.rate_limit_login)
        # Refresh limits count per instance: they guard this instance's database
        # writes and must not add store round trips to the hot path. (Guessing a
        # refresh token is hopeless anyway: the MAC is checked before the store.)
        # A token whose MAC verifies is judged by its session's count alone; only
        # forgeries count against the address, so garbage sent from a shared
        # address never refuses another client's genuine token.
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
        self,
        session: SessionRecord,
        scope: str,
        now: float,
        first: bool = False,
        *,
        extra: Mapping[str, Any] | None = None,
        access_cap: int | None = None,
        resources: str | None = None,
    ) -> tuple[str, int]:
        """Sign an access token for ``session``.

        ``extra`` are the claims hook's (checked) claims, merged over the
        session's own (the hook wins: it speaks for the user as they are now);
        ``aud`` comes from ``resources`` (default: the session's, RFC 8707).
        """
        key = self.keyring().signing_key(now)
        if key is None:
            raise TemporarilyUnavailable("No signing key is available.")
        exp = self.policy.access_expiry(scope, now, session.expires_at, first, access_cap)
        iat = int(now)
        members = registered_claims(
            iss=self.settings.issuer,
            sub=session.user_id,
            aud=rfc8707.audience(session.resources if resources is None else resources, self.settings.audience),
            exp=exp,
            iat=iat,
            jti=new_jti(),
            sid=session.id,
            scope=scope,
            auth_time=int(session.auth_time),
            client_id=session.client_id,
            preferred_username=session.username,
        )
        # The application's claims first; the registered ones always win.
        custom = {**session_claims(session), **extra} if extra else session_claims(session)
        return mint_json(key, access_claims(members, custom)), max(0, exp - iat)

    def _grant(
        self,
        session: SessionRecord,
        counter: int,
        scope: str,
        now: float,
        outcome: GrantOutcome,
        extra: Mapping[str, Any] | None = None,
        lifetimes: Lifetimes | None = None,
        resources: str | None = None,
    ) -> Grant:
        cap = lifetimes.access_ttl if lifetimes else None  # pragma: no mutate - every caller passes lifetimes
        access, expires_in = self.mint_access(
            session, scope, now, first=counter == 0, extra=extra, access_cap=cap, resources=resources
        )
        refresh = "" if lifetimes and not lifetimes.refresh else self.refresh_tokens.issue(session.id, counter)
        return Grant(access, expires_in, refresh, scope, session, outcome)

    @staticmethod
    def _context(session: SessionRecord, scope: str, event: Literal["login", "refresh", "renewal"]) -> TokenContext:
        return TokenContext(session.user_id, session.username, session.client_id, scope, session.id, event)

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
        remember: bool | None = None,
        resource: str | None = None,
        device_token: str | None = None,
    ) -> Grant:
        """Check the credentials with the identity provider and start a session.

        ``remember`` picks the absolute session lifetime: ``False`` the short
        one (``SHORT_SESSION_MAX_AGE``), ``True`` or ``None`` the long one.
        ``device_token`` (from an earlier successful login of ``username`` on
        this device) puts the attempt under the device's own limit instead of
        the (user, address) and address limits.
        """
        now = self.clock()
        granted_resources = rfc8707.grant(resource, self.settings.resources)
        name = normalize_username(username)
        device = self.devices.check(device_token, name, now) if self.devices else None
        if device is not None:
            limiters = [(self._login_device, f"login-device:{device}")]
        else:
            limiters = [(self._login_pair, f"login:{name}:{ip}"), (self._login_ip, f"login-ip:{ip}")]
        request = RequestInfo(ip=ip, user_agent=user_agent, client_id=client_id)
        try:
            async with contextlib.AsyncExitStack() as admitted:
                for limiter, key in limiters:
                    await admitted.enter_async_context(limiter.attempt(key, now))
                try:
                    identity = await self.identity.authenticate(username, password, request)
                except IdentityUnavailable:
                    self.events.on_login("unavailable")
                    raise
                if identity is None:
                    # Only failures count: a user who logs in often is not an attacker.
                    for limiter, key in limiters:
                        await limiter.record(key, now)
                    self.events.on_login("bad_credentials")
                    raise InvalidGrant("Invalid user name or password.")
        except RateLimited:
            self.events.on_login("rate_limited")
            raise
        grant = await self.start_session(
            identity, scope=scope, client_id=client_id, user_agent=user_agent, ip=ip, remember=remember,
            resources=granted_resources,
        )
        self.events.on_login("ok")
        if self.devices is None:
            return grant
        return dataclasses.replace(grant, device_token=self.devices.issue(name, now, device))

    async def start_session(
        self,
        identity: Identity,
        *,
        scope: str | None = None,
        client_id: str = "silentauth",
        user_agent: str = "",
        ip: str = "",
        remember: bool | None = None,
        resources: str = "",
        claims: Mapping[str, Any] | None = None,
    ) -> Grant:
        """Start a session for a user the caller has already authenticated.

        The application's own login (one-time code, SSO callback, WebAuthn)
        calls this after its check. ``claims`` are stored with the session and
        go into each of its access tokens, under the claims hook's answer;
        they follow the hook's rules (:func:`~silentauth.core.hooks.check_claims`),
        else :class:`~silentauth.errors.InvalidClaims`. The hooks are asked
        first: if one fails, nothing is stored. Then the session limit ends
        the oldest sessions.
        """
        if not valid_identity(identity):
            raise InvalidRequest("The user id must be 1-256 printable characters.")
        stored_claims = encode_claims(claims, self.settings.claims_max_bytes)
        now = self.clock()
        granted = self._scope(scope, self.settings.scope)
        draft = SessionRecord(
            id=new_session_id(),
            user_id=identity.user_id,
            username=(identity.username or identity.user_id)[:256],
            counter=0,
            scope=granted,
            client_id=client_id[:128],
            auth_time=now,
            created_at=now,
            last_used_at=now,
            rotated_at=now,
            idle_expires_at=now,  # pragma: no mutate - the draft's deadlines are set below before any read
            expires_at=now,  # pragma: no mutate - the draft's deadlines are set below before any read
            user_agent=user_agent[:512],
            ip=ip[:64],
            resources=resources,
            claims=stored_claims,
        )
        context = self._context(draft, granted, "login")
        lifetimes = await self.hooks.lifetimes(context)
        extra = await self.hooks.claims(context)
        max_age = lifetimes.session_max_age
        if max_age is None and remember is False:
            max_age = self.settings.short_session_max_age
        expires_at = self.policy.session_expiry(now, max_age)
        session = draft.with_(
            idle_expires_at=min(self.policy.idle_deadline(now), expires_at), expires_at=expires_at
        )
        # The store ends the oldest sessions beyond the per-user limit in the
        # same atomic step as the insert, so racing logins cannot overfill it.
        for ended in await self.store.create_session(session, self.settings.session_limit):
            self.revocations.add(ended)
            self.events.on_revoke("policy")
        return self._grant(session, 0, granted, now, "ok", extra, lifetimes)

    # -- refresh ---------------------------------------------------------------

    def session_of(self, refresh_token: str) -> str:
        """The session id of an authentic refresh token (no store access)."""
        return self.refresh_tokens.parse(refresh_token)[0]

    async def refresh(
        self,
        refresh_token: str,
        *,
        scope: str | None = None,
        ip: str = "",  # pragma: no mutate - any constant names the one bucket of callers without an address
        client_id: str | None = None,
        resource: str | None = None,
        idempotency_key: str | None = None,
    ) -> Grant:
        """Rotate ``refresh_token``: a new access and refresh token, or InvalidGrant.

        ``client_id`` (an authenticated or named client) must be the one the
        session was issued to (RFC 6749 §6), checked before anything rotates;
        so is ``resource``, which may narrow the session's resources (RFC 8707).
        ``idempotency_key`` (already parsed by
        :func:`~silentauth.core.idempotency.parse_key`) lets a retry of this
        very refresh get the same successor if the answer is lost.

        Checks that need no store happen here, per call; the rotation itself
        joins the calls made in the same event-loop turn (:mod:`silentauth.core.batch`).
        """
        now = self.clock()
        try:
            session_id, counter = self.refresh_tokens.parse(refresh_token)
        except InvalidGrant:
            ip_key = f"refresh-fail:{ip}"
            await self._refresh_fail_ip.check(ip_key, now)
            self.events.on_refresh("invalid")
            await self._refresh_fail_ip.record(ip_key, now)
            raise
        await self._refresh_session.check(f"refresh:{session_id}", now)
        request = _Refresh(session_id, counter, scope, resource=resource, key_hash=key_hash(idempotency_key))
        wants_scope = scope is not None and bool(scope.strip())
        if wants_scope or self.hooks.active or client_id is not None or resource is not None:
            # A refused scope, client or resource, or a failing hook, must not burn the
            # token: judge them before rotating.
            current = await self.store.get_session(session_id)
            if current is not None and client_id is not None and current.client_id != client_id:
                await self._fail("invalid", session_id, now)
                raise InvalidGrant("The refresh token was issued to another client.")
            if current is not None:
                try:
                    narrowed = self._scope(scope, current.scope)
                except InvalidScope:
                    self.events.on_refresh("invalid")
                    raise
                rfc8707.narrow(resource, current.resources)
                if self.hooks.active and current.is_live(now):
                    request = await self._ask_hooks(request, current, narrowed)
        return await self._rotations.submit(request)

    async def _ask_hooks(self, request: _Refresh, session: SessionRecord, scope: str) -> _Refresh:
        context = self._context(session, scope, "refresh")
        lifetimes = await self.hooks.lifetimes(context)
        if not lifetimes.refresh:
            self.events.on_refresh("invalid")
            raise InvalidGrant("Sessions of this client do not refresh; log in again.")
        extra = await self.hooks.claims(context)
        return request._replace(extra=extra, access_cap=lifetimes.access_ttl)

    async def _rotate_batch(self, batch: list[_Refresh]) -> list[Grant | BaseException]:
        now = self.clock()
        results = await self.store.rotate_many(
            [RotateRequest(r.session_id, r.counter, self.policy.idle_deadline(now), r.key_hash) for r in batch], now
        )
        outcomes: list[Grant | BaseException] = []
        for request, result in zip(batch, results, strict=True):  # pragma: no mutate - one result per request (Store port)
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
            return self._finish(s, r, now, "rotated")
        if s is None or s.revoked_at is not None:
            await self._fail("invalid", r.session_id, now)
            raise InvalidGrant("The refresh token is invalid or revoked.")
        if s.is_expired(now):
            await self._fail("expired", r.session_id, now)
            raise InvalidGrant("The session has expired; log in again.")
        if s.counter == r.counter + 1 and same_key(s.rotation_key, r.key_hash):
            # This request's own rotation, whose answer never arrived: its successor
            # is still unused, so handing it out again forks nothing.
            return self._finish(s, r, now, "retried")
        # A failed swap with the counter unmoved means revoked or expired, judged above.
        if s.counter > r.counter:  # pragma: no mutate
            rule = cast(RuleName, self.settings.rotation_rule)  # pragma: no mutate - cast() is the identity at run time
            verdict = judge(rule, r.counter, s, now, self.settings.reuse_grace)
            if verdict.action == "grace":
                # A concurrent or retried refresh: a token of the one live lineage again.
                return self._finish(s, r, now, "grace", verdict.counter)
            if verdict.action == "late" and depth == 0:
                # Skip a generation so the unused successor dies (rotation_rules.py).
                idle = self.policy.idle_deadline(now)
                swaps = await self.store.rotate_many(
                    [RotateRequest(r.session_id, s.counter, idle), RotateRequest(r.session_id, s.counter + 1, idle)],
                    now,
                )
                last = swaps[-1]  # pragma: no mutate - of two swaps, [-1] is [1]
                # No mutants on the next line: one store call is atomic (the first swap implies
                # the second) and a partial move, judged again, lands on the same token; the
                # revoked row is covered by tests/core/test_sessions.py (logout race).
                if swaps[0].swapped and last.swapped and last.session is not None:  # pragma: no mutate
                    return self._finish(last.session, r, now, "grace", verdict.counter)
                # Someone moved the counter meanwhile: judge against the row as it is now.
                # Failed swaps leave the row revoked, expired or at least three ahead, never
                # one behind: the new verdict is not "late" and depth only bounds recursion.
                return await self._settle(r, RotateResult(False, last.session), now, depth + 1)  # pragma: no mutate
            await self.revoke(r.session_id, "reuse")
            await self._fail("reuse_detected", r.session_id, now)
            raise InvalidGrant("The refresh token was already used; the session is revoked.")
        # A counter ahead of the store: only a restored (older) database does this.
        await self._fail("invalid", r.session_id, now)
        raise InvalidGrant("The refresh token is invalid.")

    def _finish(
        self,
        s: SessionRecord,
        r: _Refresh,
        now: float,
        outcome: Literal["rotated", "grace", "retried"],
        counter: int | None = None,
    ) -> Grant:
        """The grant for refresh ``r``: the token for ``counter`` (default: ``r``'s successor)."""
        try:
            narrowed = self._scope(r.scope, s.scope)
        except InvalidScope:
            # refresh() judged this scope against the same row already: unreachable unless
            # a session's scope could change, which no store operation does.
            self.events.on_refresh("invalid")  # pragma: no mutate
            raise
        self.events.on_refresh(outcome)
        return self._grant(
            s, r.counter + 1 if counter is None else counter, narrowed, now, outcome, r.extra,
            # The shared default unless a hook capped the lifetime: no object per refresh.
            DEFAULT_LIFETIMES if r.access_cap is None else Lifetimes(access_ttl=r.access_cap),  # pragma: no mutate - Lifetimes(None) equals it
            rfc8707.narrow(r.resource, s.resources),
        )

    async def _fail(self, outcome: RefreshOutcome, session_id: str, now: float) -> None:
        # The token was authentic: its session pays, not everyone at the address.
        self.events.on_refresh(outcome)
        await self._refresh_session.record(f"refresh:{session_id}", now)

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

    async def password_changed(self, user_id: str, keep_session: str | None = None) -> int:
        """End every session of ``user_id`` but ``keep_session`` (the device that changed it)."""
        ended = 0
        for s in await self.sessions(user_id):
            if s.id != keep_session and await self.revoke(s.id, "password_change"):
                ended += 1
        return ended

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
        # A memory bound past 10,000 remembered renewals; it drops only expired entries.
        if len(self._renewals) > 10_000:  # pragma: no mutate
            self._renewals = {k: v for k, v in self._renewals.items() if v[0] > now}  # pragma: no mutate
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
        scope = str(claims["scope"])
        extra, cap = None, None
        if self.hooks.active:
            context = self._context(s, scope, "renewal")
            try:
                lifetimes = await self.hooks.lifetimes(context)
                extra = await self.hooks.claims(context)
            except ClaimsUnavailable:
                return None  # logged by the hooks; the client refreshes instead
            if not lifetimes.refresh:
                return None
            cap = lifetimes.access_ttl
        # The same audience as the token it replaces (RFC 8707 down-scoping survives renewal).
        # of_audience's default only maps the default audience back onto itself, hence no mutants.
        resources = rfc8707.of_audience(claims.get("aud", self.settings.audience), self.settings.audience)  # pragma: no mutate
        token, _ = self.mint_access(s, scope, now, extra=extra, access_cap=cap, resources=resources)
        return token
