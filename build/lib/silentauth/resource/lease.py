"""The identity a long-lived connection runs as, and until when.

A WebSocket or an event stream outlives any one access token. It is granted
to one subject and one session until the token's ``exp``; a newer token of
the *same* subject and session moves that deadline, anything else ends the
connection. :class:`Lease` holds that state for both transports
(:mod:`silentauth.resource.websocket`, :mod:`silentauth.resource.sse`), so
they follow one rule set and share the close codes below.

Close codes (RFC 6455 §7.4.2 leaves 4000-4999 to applications; the HTTP
status they echo is the last three digits):

====  =====================================================================
4400  a message the protocol does not know (not JSON, no ``type``, binary)
4401  no valid token: none in time, invalid, expired, or session revoked
4403  a token of another user or session, or without a required scope
1008  policy violation: too many re-authentications or unread messages
1009  a message over the size limit
====  =====================================================================

4401 means "get a fresh token and reconnect" (a client whose refresh then
fails has lost its session); every other code is final.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import NamedTuple

import anyio

from silentauth.errors import BearerError, InsufficientScope, InvalidToken, WrongSession
from silentauth.resource.verify import Principal, TokenAuthenticator

CLOSE_BAD_MESSAGE = 4400
CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009


class Ending(NamedTuple):
    """Why a connection ends: an RFC 6455 close code and a short reason."""

    code: int
    reason: str


TOKEN_EXPIRED = Ending(CLOSE_UNAUTHENTICATED, "token expired")
SESSION_REVOKED = Ending(CLOSE_UNAUTHENTICATED, "session revoked")


def ending_for(error: BearerError) -> Ending:
    """The close code and reason for a refused (re-)authentication."""
    if isinstance(error, WrongSession | InsufficientScope):
        return Ending(CLOSE_FORBIDDEN, _short(error.error_description))
    return Ending(CLOSE_UNAUTHENTICATED, _short(error.error_description))


def _short(reason: str) -> str:
    # A close frame's reason may hold at most 123 bytes (RFC 6455 §5.5.1).
    return reason.encode("utf-8")[:120].decode("utf-8", "ignore")


async def authenticate(
    authenticator: TokenAuthenticator, token: object, scopes: Iterable[str] = ()
) -> Principal:
    """The principal of a bare token (not a header), with ``scopes`` demanded.

    Raises a :class:`~silentauth.errors.BearerError`; a token that is not a
    string is as invalid as a forged one.
    """
    if not isinstance(token, str) or not token or " " in token:
        raise InvalidToken("The access token is malformed.")
    principal = await authenticator.aauthenticate("Bearer " + token)
    return principal.require(*scopes)


class Lease:
    """One connection's grant: its principal, renewable by the same subject and session.

    The revocation check asks the authenticator's own ``is_revoked``, the one
    every bearer request consults, so a connection ends on the same signal a
    request would be refused on.
    """

    def __init__(
        self,
        authenticator: TokenAuthenticator,
        principal: Principal,
        scopes: Iterable[str] = (),
    ) -> None:
        self.authenticator = authenticator
        self.principal = principal
        self.scopes = tuple(scopes)
        self.renewals = 0

    @property
    def deadline(self) -> float:
        """Epoch seconds at which the connection ends unless renewed."""
        return self.principal.expires_at

    async def renew(self, token: object) -> Principal:
        """Adopt ``token`` if it is valid and of the same subject and session.

        Raises :class:`~silentauth.errors.WrongSession` for anyone else's token
        and other BearerErrors for an invalid one. An older token of the same
        session is accepted but never moves the deadline back.
        """
        principal = await authenticate(self.authenticator, token, self.scopes)
        current = self.principal
        if (principal.subject, principal.session_id) != (
            current.subject,
            current.session_id,
        ):
            raise WrongSession()
        if principal.expires_at >= current.expires_at:
            self.principal = principal
        self.renewals += 1
        return self.principal

    def ending(self) -> Ending | None:
        """Why the connection must end now, or ``None`` while it may go on."""
        if self.authenticator.is_revoked(self.principal.session_id):
            return SESSION_REVOKED
        if self.authenticator.clock() >= self.deadline:
            return TOKEN_EXPIRED
        return None


class Sweeper:
    """Checks every open connection's lease every ``interval`` seconds, from one task.

    A task per connection waking twice a second would cost 20,000 wake-ups a second
    for 10,000 idle sockets; here one connection's watch task (the first to arrive)
    sweeps for all, and the others sleep until it leaves and one of them takes over.
    Nothing outlives the connections, so no background task needs an owner.
    """

    def __init__(self, interval: float = 0.5) -> None:
        self.interval = interval
        self._entries: dict[object, tuple[Lease, Callable[[Ending], None]]] = {}
        self._leader = False
        self._vacant: anyio.Event | None = None

    def __len__(self) -> int:
        return len(self._entries)

    async def watch(self, key: object, lease: Lease, on_end: Callable[[Ending], None]) -> None:
        """Watch ``lease`` until cancelled; ``on_end`` is called once when it must end."""
        self._entries[key] = (lease, on_end)
        try:
            while True:
                if not self._leader:
                    await self._lead()
                else:
                    if self._vacant is None:
                        self._vacant = anyio.Event()
                    await self._vacant.wait()
        finally:
            self._entries.pop(key, None)

    async def _lead(self) -> None:
        self._leader = True
        try:
            while True:
                self.sweep()
                await anyio.sleep(self.interval)
        finally:
            self._leader = False
            vacant, self._vacant = self._vacant, None
            if vacant is not None:
                vacant.set()  # the waiters wake; the first to run leads

    def sweep(self) -> None:
        """End every connection whose lease says so (its deadline, or a revocation)."""
        for key, (lease, on_end) in list(self._entries.items()):
            ending = lease.ending()
            if ending is not None:
                del self._entries[key]
                on_end(ending)
