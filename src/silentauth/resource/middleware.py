"""Pure ASGI middleware: authenticate bearer tokens and push renewals.

Per-request state lives in the ASGI scope, never on ``self``. The middleware
does not reject anything itself: it records the principal (or the error) in
``scope["state"]``, and routes demand what they need with :func:`require_auth`
or the FastAPI dependencies. When a renewer is given and the token presented
is close to expiry, the response carries ``New-Access-Token``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.authentication import BaseUser
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from silentauth.errors import BearerError, MissingToken, UnknownKeyId
from silentauth.resource.verify import Principal, TokenAuthenticator

Renewer = Callable[[Principal], Awaitable[str | None]]
RENEWAL_HEADER = "New-Access-Token"
PRINCIPAL_KEY = "silentauth.principal"
ERROR_KEY = "silentauth.error"


class BearerAuthMiddleware:
    """Authenticate every request that carries ``Authorization: Bearer``.

    ``renewer`` (the token service passes one) is awaited for successful
    responses and may return a fresh token for the ``New-Access-Token`` header.
    """

    def __init__(
        self,
        app: ASGIApp,
        authenticator: TokenAuthenticator,
        renewer: Renewer | None = None,
    ) -> None:
        self.app = app
        self.authenticator = authenticator
        self.renewer = renewer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        header = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                # latin-1 never fails; non-ASCII then fails token checks as malformed.
                header = value.decode("latin-1")
                break
        state = scope.setdefault("state", {})
        if PRINCIPAL_KEY in state or ERROR_KEY in state:
            # An outer BearerAuthMiddleware (the host app of an embedded token service)
            # has judged this request already: a second pass would push a second
            # New-Access-Token header, which a client reads as "tok, tok".
            await self.app(scope, receive, send)
            return
        if header is None:
            # Anonymous: nothing to verify. Recorded as "no credentials" rather than as a
            # MissingToken built per request (an exception object on every public request);
            # current() raises it only for a route that demands a token.
            state[ERROR_KEY] = None
            await self.app(scope, receive, send)
            return
        principal: Principal | None = None
        auth = self.authenticator
        try:
            if auth.settled():
                # Nothing to fetch first: the synchronous check, without the coroutine
                # layers of aauthenticate (~0.2 µs of the ~1.6 µs this path costs).
                try:
                    principal = auth.authenticate(header)
                except UnknownKeyId:
                    principal = await auth.aauthenticate(header)  # learns the key once
            else:
                principal = await auth.aauthenticate(header)
            state[PRINCIPAL_KEY] = principal
        except BearerError as exc:
            state[ERROR_KEY] = exc
        if principal is None or self.renewer is None or scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        renewer, found = self.renewer, principal

        async def send_with_renewal(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] < 400:
                token = await renewer(found)
                if token is not None:
                    # Appended, not merged: repeated Expose-Headers fields combine (RFC 9110 §5.3).
                    headers = list(message.get("headers", []))
                    headers.append((b"new-access-token", token.encode("ascii")))
                    headers.append(
                        (b"access-control-expose-headers", b"New-Access-Token")
                    )
                    message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_renewal)


class PrincipalUser(BaseUser):
    """A Starlette ``request.user`` backed by a :class:`Principal`."""

    def __init__(self, principal: Principal) -> None:
        self.principal = principal

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def display_name(self) -> str:
        return self.principal.username or self.principal.subject

    @property
    def identity(self) -> str:
        return self.principal.subject


def current(conn: HTTPConnection) -> Principal:
    """The authenticated principal, or the BearerError the request earned."""
    state: dict[str, Any] = conn.scope.get("state") or {}
    principal: Principal | None = state.get(PRINCIPAL_KEY)
    if principal is not None:
        return principal
    user = conn.scope.get("user")
    if isinstance(user, PrincipalUser):
        return user.principal
    error = state.get(ERROR_KEY)
    if isinstance(error, BearerError):
        raise error
    if ERROR_KEY in state or "user" in conn.scope:
        # BearerAuthMiddleware or AuthenticationMiddleware ran and found no credentials.
        raise MissingToken()
    # A wiring mistake, not a client error: fail loudly (500) rather than let anyone in.
    raise RuntimeError(
        "BearerAuthMiddleware (or SilentAuthBackend) is not installed on this app"
    )


def require_auth(
    conn: HTTPConnection,
    *,
    scope: str | None = None,
    max_age: int | None = None,
    now: float | None = None,
) -> Principal:
    """The caller's principal, or the RFC 6750 / RFC 9470 error to answer with.

    ``scope`` and ``max_age`` are checked by :meth:`Principal.require`.
    """
    principal = current(conn)
    if scope is None and max_age is None:
        return principal  # the common call: nothing more to check
    scopes = () if scope is None else (scope,)
    return principal.require(*scopes, max_age=max_age, now=now)
