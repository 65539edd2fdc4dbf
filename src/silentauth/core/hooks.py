"""What the application adds to each token: claims and lifetimes, by hook.

Both hooks are called when a session starts and again at every refresh (and
server-pushed renewal), so a role removed from a user is gone from the next
access token without a new login, and a lifetime policy change applies at
the next refresh. Hooks are the application's code: :class:`TokenHooks`
checks every answer and turns a failure into
:class:`~silentauth.errors.ClaimsUnavailable` (503, nothing issued, nothing
rotated) with one clear line in the server log.

Claims must be a JSON object of at most ``CLAIMS_MAX_BYTES`` bytes that does
not touch the registered claims silentauth sets itself (:data:`RESERVED_CLAIMS`):
a hook must not be able to mint a token for another subject, audience or
lifetime.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import anyio

from silentauth.errors import ClaimsUnavailable, ConfigError

log = logging.getLogger("silentauth.hooks")

RESERVED_CLAIMS = frozenset(
    {"iss", "sub", "aud", "exp", "iat", "jti", "sid", "scope", "auth_time", "client_id", "nbf", "preferred_username"}
)
HOOK_TIMEOUT = 5.0
# A broken hook fails every login and refresh: one log line per this many seconds,
# carrying the count of the ones in between, instead of one line per request.
LOG_EVERY = 10.0


@dataclass(frozen=True)
class TokenContext:
    """The session a token is about to be minted for, as the hooks see it."""

    user_id: str
    username: str
    client_id: str
    scope: str
    session_id: str
    event: Literal["login", "refresh", "renewal"]


@dataclass(frozen=True)
class Lifetimes:
    """A lifetime hook's answer; ``None`` keeps the configured value.

    ``access_ttl`` replaces ``ACCESS_TTL`` for this user or client (the
    per-scope policy still applies: the shorter wins); ``session_max_age`` sets the absolute
    session lifetime when it starts (it never moves afterwards);
    ``refresh=False`` gives no refresh token: the session ends with its
    access token (a kiosk).
    """

    access_ttl: int | None = None
    session_max_age: int | None = None
    refresh: bool = True


ClaimsHook = Callable[[TokenContext], Awaitable[Mapping[str, Any]]]
"""``async def claims(context) -> {"roles": [...], "tenant": ...}``."""

LifetimeHook = Callable[[TokenContext], Awaitable[Lifetimes | None]]
"""``async def lifetimes(context) -> Lifetimes(access_ttl=300) | None``."""

DEFAULT_LIFETIMES = Lifetimes()


def check_claims(value: object, max_bytes: int) -> dict[str, Any]:
    """``value`` as token claims, or ValueError saying what is wrong with it.

    The one rule for the claims hook's answers and for the claims an
    application gives a session it starts (:meth:`SessionService.start_session`).
    """
    if not isinstance(value, Mapping):
        raise ValueError(f"{type(value).__name__}, not a mapping")
    claims = dict(value)
    bad_keys = [k for k in claims if not isinstance(k, str)]
    if bad_keys:
        raise ValueError(f"claim names must be strings, got {bad_keys[0]!r}")
    reserved = sorted(RESERVED_CLAIMS.intersection(claims))
    if reserved:
        raise ValueError(f"reserved claims {reserved}")
    try:
        size = len(json.dumps(claims, allow_nan=False, separators=(",", ":")).encode())
    except (TypeError, ValueError) as exc:
        raise ValueError(f"a value that is not JSON: {exc}") from None
    if size > max_bytes:
        raise ValueError(f"{size} bytes of claims, more than CLAIMS_MAX_BYTES={max_bytes}")
    return claims


def check_lifetimes(value: object) -> Lifetimes:
    """``value`` as :class:`Lifetimes`, or ValueError."""
    if value is None:
        return DEFAULT_LIFETIMES
    if not isinstance(value, Lifetimes):
        raise ValueError(f"returned {type(value).__name__}, not Lifetimes")
    for name in ("access_ttl", "session_max_age"):
        seconds = getattr(value, name)
        if seconds is not None and (not isinstance(seconds, int) or isinstance(seconds, bool) or seconds < 1):
            raise ValueError(f"{name}={seconds!r} is not a whole number of seconds >= 1")
    return value


def as_hook(setting: str, value: object) -> Callable[[TokenContext], Awaitable[Any]]:
    """``value`` if callable, else :class:`ConfigError` for ``setting``."""
    if not callable(value):
        raise ConfigError(setting, f"{value!r} is not an async callable taking a TokenContext")
    return value


class TokenHooks:
    """Calls the configured hooks with a deadline and checks what they return."""

    def __init__(
        self,
        claims: ClaimsHook | None = None,
        lifetimes: LifetimeHook | None = None,
        *,
        max_bytes: int = 2048,
        timeout: float = HOOK_TIMEOUT,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._claims = claims
        self._lifetimes = lifetimes
        self.max_bytes = max_bytes
        self.timeout = timeout
        self._monotonic = monotonic  # injectable: the log's pacing is tested on a fake clock
        self._logged_at = -LOG_EVERY
        self._quiet = 0  # refusals not logged since the last line  # pragma: no mutate - the first refusal always logs, then resets it

    @property
    def active(self) -> bool:
        """Whether any hook is configured (refreshes then read the session first)."""
        return self._claims is not None or self._lifetimes is not None

    async def claims(self, context: TokenContext) -> dict[str, Any]:
        """The application's claims for ``context`` (``{}`` without a hook)."""
        if self._claims is None:
            return {}
        value = await self._call("claims", self._claims, context)
        try:
            return check_claims(value, self.max_bytes)
        except ValueError as exc:
            raise self._refuse("claims", context, f"returned {exc}") from None

    async def lifetimes(self, context: TokenContext) -> Lifetimes:
        """The lifetimes for ``context`` (the configured ones without a hook)."""
        if self._lifetimes is None:
            return DEFAULT_LIFETIMES
        value = await self._call("lifetime", self._lifetimes, context)
        try:
            return check_lifetimes(value)
        except ValueError as exc:
            raise self._refuse("lifetime", context, str(exc)) from None

    async def _call(self, kind: str, hook: Callable[[TokenContext], Awaitable[Any]], context: TokenContext) -> Any:
        try:
            with anyio.fail_after(self.timeout):
                return await hook(context)
        except TimeoutError:
            raise self._refuse(kind, context, f"did not answer within {self.timeout} s") from None
        except Exception as exc:
            raise self._refuse(kind, context, f"raised {type(exc).__name__}: {exc}") from None

    def _refuse(self, kind: str, context: TokenContext, why: str) -> ClaimsUnavailable:
        now = self._monotonic()
        if now - self._logged_at >= LOG_EVERY:
            more = f" ({self._quiet} more refusals since the last line)" if self._quiet else ""
            log.error(
                "%s hook %s for user %r at %s; no token issued%s", kind, why, context.user_id, context.event, more
            )
            self._logged_at, self._quiet = now, 0
        else:
            self._quiet += 1
        return ClaimsUnavailable(retry_after=5)
