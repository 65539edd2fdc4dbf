"""Whose credentials are these? The identity protocol and its guard.

An application that already has users (a Django or SQLAlchemy table, an LDAP
directory) plugs an :class:`IdentityProvider` into silentauth instead of
copying them into silentauth's own table; :class:`LocalUsers`, the built-in
user table, is one implementation. The password grant and ``/auth/login``
ask the provider through :class:`GuardedIdentity`, which keeps in silentauth
what a plug-in must not be trusted to get right:

- a deadline: a provider that hangs or raises becomes
  :class:`~silentauth.errors.IdentityUnavailable` (503 with ``Retry-After``),
  never a 500 and never a session, and the outage is logged once, when it
  starts, and once when it ends;
- timing: a refusal is padded to the time a recent success took, so a
  directory that answers "no such user" faster than "wrong password" does
  not tell an attacker which names exist (the built-in table equalises by
  verifying a dummy hash, see :class:`~silentauth.core.passwords.Passwords`).

Rate limits stay in the session service, in front of the provider.
"""

from __future__ import annotations

import logging
import time
import unicodedata
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import anyio

from silentauth.core.passwords import Passwords, normalize_username
from silentauth.core.ports import Store
from silentauth.errors import (
    ConfigError,
    IdentityUnavailable,
    OAuthError,
    StoreUnavailable,
)

log = logging.getLogger("silentauth.identity")


@dataclass(frozen=True)
class Identity:
    """Who logged in: a stable ``user_id`` (the ``sub`` claim) and a display ``username``."""

    user_id: str
    username: str = ""


@dataclass(frozen=True)
class RequestInfo:
    """What silentauth knows of the login request, for a provider that cares."""

    ip: str = ""
    user_agent: str = ""
    client_id: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)


@runtime_checkable
class IdentityProvider(Protocol):
    """Checks a user name and password; ``None`` means "refused", whatever the reason.

    It may raise or be slow: :class:`GuardedIdentity` turns either into a 503.
    """

    async def authenticate(self, username: str, password: str, request: RequestInfo) -> Identity | None:
        """The identity behind these credentials, or ``None``."""


class LocalUsers:
    """The built-in user table (``silentauth user add``) as an :class:`IdentityProvider`."""

    def __init__(self, store: Store, passwords: Passwords) -> None:
        self.store = store
        self.passwords = passwords

    async def authenticate(self, username: str, password: str, request: RequestInfo) -> Identity | None:
        """Argon2id-verify ``password``; an unknown user costs one dummy verify too."""
        user = await self.store.get_user(normalize_username(username))
        ok = await self.passwords.verify(user.password_hash if user else None, password)
        return Identity(user.id, user.username) if user is not None and ok else None


MAX_USER_ID_LENGTH = 256


def valid_identity(value: object) -> bool:
    """An :class:`Identity` whose ``user_id`` can be a ``sub``: 1-256 printable characters.

    Never truncated: two long ids sharing a prefix would become one subject.
    """
    if not isinstance(value, Identity) or not isinstance(value.user_id, str):
        return False
    uid = value.user_id
    return 0 < len(uid) <= MAX_USER_ID_LENGTH and not any(
        unicodedata.category(c).startswith("C") for c in uid
    ) and isinstance(value.username, str)


def as_identity_provider(value: object) -> IdentityProvider:
    """``value`` if it has an ``authenticate`` method, else :class:`ConfigError`."""
    if not isinstance(value, IdentityProvider):
        raise ConfigError("IDENTITY", f"{value!r} has no 'async def authenticate(username, password, request)'")
    return value


class GuardedIdentity:
    """An :class:`IdentityProvider` behind a deadline, outage logging and timing padding."""

    def __init__(
        self,
        provider: IdentityProvider,
        *,
        timeout: float,
        builtin: bool = False,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        self.provider = provider
        self.timeout = timeout
        # Injectable so that padding and outage lengths are tested on a fake clock.
        self._monotonic = monotonic
        self._sleep = sleep
        # The built-in table equalises by itself, and its Argon2 queue may legitimately
        # grow long in a login storm: neither padding nor a deadline for it.
        self._builtin = builtin
        self._typical = 0.0  # how long a success takes lately (moving average)
        self._down_since: float | None = None

    async def authenticate(self, username: str, password: str, request: RequestInfo) -> Identity | None:
        """The provider's answer, checked; IdentityUnavailable if it failed or hung."""
        started = self._monotonic()
        try:
            with anyio.fail_after(None if self._builtin else self.timeout):
                identity = await self.provider.authenticate(username, password, request)
        except StoreUnavailable:
            raise  # the service's own store: reported as such by the caller
        except OAuthError as exc:
            if exc.status_code < 500:
                raise  # a deliberate 4xx (a malformed user name) is the client's answer
            self._failed(exc)
            raise IdentityUnavailable(retry_after=max(1, round(self.timeout))) from None
        except Exception as exc:
            self._failed(exc)
            raise IdentityUnavailable(retry_after=max(1, round(self.timeout))) from None
        if identity is not None and not valid_identity(identity):
            self._failed(TypeError(f"authenticate returned an invalid {type(identity).__name__}"))  # pragma: no mutate - only the type is logged
            raise IdentityUnavailable(retry_after=max(1, round(self.timeout)))
        self._recovered()
        elapsed = self._monotonic() - started
        if identity is not None:
            self._typical = elapsed if self._typical == 0 else 0.8 * self._typical + 0.2 * elapsed
        elif not self._builtin and elapsed < self._typical:  # pragma: no mutate - at ==, sleep(0) pads nothing
            await self._sleep(self._typical - elapsed)
        return identity

    def _failed(self, exc: BaseException) -> None:
        if self._down_since is None:
            self._down_since = self._monotonic()
            # The type only: a plug-in's message may quote the credentials it was given.
            what = "timed out" if isinstance(exc, TimeoutError) else f"failed ({type(exc).__name__})"
            log.error("identity provider %s; logins answer 503 until it recovers", what)

    def _recovered(self) -> None:
        if self._down_since is not None:
            log.warning("identity provider recovered after %.1f s", self._monotonic() - self._down_since)
            self._down_since = None
