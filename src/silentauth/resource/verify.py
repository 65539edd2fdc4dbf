"""Bearer-token authentication with a per-token claims cache.

An ECDSA verify costs ~100 µs; an API sees the same token many times until it
expires. Verified claims are therefore cached per token string until their
``exp``, and each hit costs a dict look-up plus the revocation check — which is
the part that must stay live, so it is never cached.

The hot path (:meth:`TokenAuthenticator.authenticate`) is synchronous and does
no I/O. A key source that can learn new keys (a JWKS fetched over HTTP) raises
:class:`UnknownKeyId` for a ``kid`` it does not hold; async callers (the
middleware, the Starlette backend) use :meth:`TokenAuthenticator.aauthenticate`,
the one place that learns the key once and retries.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from silentauth.clock import Clock, system_clock
from silentauth.core.tokens import MAX_TOKEN_LENGTH, AccessTokenVerifier
from silentauth.errors import (
    InsufficientClaim,
    InsufficientScope,
    InsufficientUserAuthentication,
    InvalidToken,
    MalformedBearerRequest,
    MissingToken,
    UnknownKeyId,
)

if TYPE_CHECKING:
    from silentauth.resource.remote import RemoteAuthenticator


@dataclass(frozen=True)
class Principal:
    """Who called: the verified claims of the access token."""

    token: str
    claims: Mapping[str, Any]
    scopes: frozenset[str] = field(default_factory=frozenset)

    @property
    def subject(self) -> str:
        """The ``sub`` claim: the user id."""
        return str(self.claims["sub"])

    # Cached: every request's revocation and expiry checks read these two, and a
    # cached principal serves many requests (functools.cached_property writes the
    # instance __dict__ directly, which a frozen dataclass allows).
    @cached_property
    def session_id(self) -> str:
        """The ``sid`` claim: the device session the token belongs to."""
        return str(self.claims["sid"])

    @property
    def auth_time(self) -> float:
        """When the user last entered credentials (epoch seconds, RFC 9470)."""
        return float(self.claims["auth_time"])

    @cached_property
    def expires_at(self) -> float:
        """The ``exp`` claim (epoch seconds)."""
        return float(self.claims["exp"])

    @property
    def username(self) -> str:
        """``preferred_username`` when the token carries it, else ``""``."""
        return str(self.claims.get("preferred_username", ""))

    def claim(self, name: str, default: Any = None) -> Any:
        """The claim ``name`` (an application claim such as ``roles``), or ``default``."""
        return self.claims.get(name, default)

    def require_claim(self, name: str, *values: Any) -> Principal:
        """This principal if it carries claim ``name`` (with one of ``values``), else 403.

        Without ``values`` the claim must be present and truthy. A list claim
        (``"roles": ["admin", "staff"]``) matches when any element is one of
        ``values``; any other claim when it equals one.
        """
        value = self.claims.get(name)
        held = value if isinstance(value, list) else [value]
        if not values:
            ok = bool(value)
        else:
            ok = any(v in values for v in held if isinstance(v, str | int | float | bool))
        if not ok:
            raise InsufficientClaim(name)
        return self

    def require(
        self, *scopes: str, max_age: int | None = None, now: float | None = None
    ) -> Principal:
        """This principal if it meets a route's demands, else the error to answer with.

        Every adapter (``require_auth``, the FastAPI dependencies) asks here.
        Each of ``scopes`` must be granted (403 ``insufficient_scope``, RFC 6750
        §3.1, naming the first one missing); ``max_age`` demands a login no
        older than that many seconds at ``now`` (401
        ``insufficient_user_authentication``, RFC 9470 §3), ``now`` defaulting
        to the system clock.
        """
        for scope in scopes:
            if scope not in self.scopes:
                raise InsufficientScope(scope)
        if max_age is not None:
            current = system_clock() if now is None else now
            if current - self.auth_time > max_age:
                raise InsufficientUserAuthentication(max_age)
        return self


SWEEP_INTERVAL = 60.0  # seconds between sweeps of expired cache entries


class TokenAuthenticator:
    """Turns an ``Authorization`` header into a :class:`Principal` or a BearerError.

    ``is_revoked(sid)`` is asked on every request (never cached); ``key_learner``,
    when given, is awaited with the ``kid`` of an :class:`UnknownKeyId` and says
    whether a retry may now succeed (see :mod:`silentauth.resource.jwks`).
    """

    def __init__(
        self,
        verifier: AccessTokenVerifier,
        is_revoked: Callable[[str], bool] = lambda sid: False,
        clock: Clock = system_clock,
        cache_size: int = 50_000,
        key_learner: Callable[[str], Awaitable[bool]] | None = None,
    ) -> None:
        self.verifier = verifier
        self.is_revoked = is_revoked
        self.clock = clock
        self.key_learner = key_learner
        self._cache: dict[str, Principal] = {}
        self._next_sweep = 0.0
        self._cache_size = cache_size

    @classmethod
    def from_issuer(
        cls, issuer: str, audience: str = "silentauth", **options: Any
    ) -> RemoteAuthenticator:
        """An authenticator for a third-party app: keys from ``{issuer}/.well-known/jwks.json``.

        See :class:`silentauth.resource.remote.RemoteAuthenticator` for ``options``
        (``jwks_url``, ``revocation_url``, ``refetch_interval``, ``clock``, ...).
        """
        from silentauth.resource.remote import RemoteAuthenticator

        return RemoteAuthenticator(issuer, audience, **options)

    @staticmethod
    def bearer(header: str | None) -> str:
        """The token of an ``Authorization: Bearer`` header (RFC 6750 §2.1)."""
        if not header:
            raise MissingToken()
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() != "bearer":
            raise MissingToken("Use the Bearer authentication scheme.")
        token = token.strip()
        if not token:
            # RFC 6750 §3.1: a malformed request (400), not a bad token (401).
            raise MalformedBearerRequest()
        if len(token) > MAX_TOKEN_LENGTH:
            raise InvalidToken("The access token is malformed.")
        return token

    def authenticate(self, header: str | None) -> Principal:
        """Synchronous: the principal of an ``Authorization`` header value."""
        return self.check(self.bearer(header))

    async def aauthenticate(self, header: str | None) -> Principal:
        """Like :meth:`authenticate`, but learns a new signing key once if needed.

        The synchronous path is tried first, so a known key costs no await; an
        :class:`UnknownKeyId` (key rotation, or a forged ``kid``) leads to one
        rate-limited :meth:`learn_key` and one retry.
        """
        try:
            return self.authenticate(header)
        except UnknownKeyId as exc:
            if not await self.learn_key(exc.kid):
                raise
        return self.authenticate(header)

    def settled(self) -> bool:
        """Whether :meth:`authenticate` alone is the whole check now (no I/O due first).

        :class:`BearerAuthMiddleware` then skips :meth:`aauthenticate` (an
        :class:`UnknownKeyId` still goes there). A subclass whose
        :meth:`aauthenticate` does I/O before checking says False while it is due.
        """
        return True

    async def learn_key(self, kid: str) -> bool:
        """Try to obtain the key ``kid`` (rate limited by the key source)."""
        if self.key_learner is None:
            return False
        return await self.key_learner(kid)

    def check(self, token: str) -> Principal:
        """Verify ``token`` (or find it in the cache) and check its session."""
        now = self.clock()
        principal = self._cache.get(token)
        if principal is None:
            claims = self.verifier.verify(token, now)
            principal = Principal(
                token, claims, frozenset(str(claims["scope"]).split())
            )
            if len(self._cache) >= self._cache_size or now >= self._next_sweep:
                # Expired entries go on a schedule too, not only when the cache is
                # full: otherwise memory grows for hours before anything leaves.
                self._evict(now)
                self._next_sweep = now + SWEEP_INTERVAL
            self._cache[token] = principal
        elif principal.expires_at <= now - self.verifier.leeway:
            del self._cache[token]
            raise InvalidToken("The access token has expired.")
        if self.is_revoked(principal.session_id):
            raise InvalidToken("The session behind this access token was revoked.")
        return principal

    def _evict(self, now: float) -> None:
        live = {t: p for t, p in self._cache.items() if p.expires_at > now}
        if len(live) >= self._cache_size:
            # Still full of live tokens: drop the oldest half (dicts keep insertion order).
            live = dict(list(live.items())[len(live) // 2 :])
        self._cache = live
