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

from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from silentauth.errors import BearerError, InsufficientScope, InsufficientUserAuthentication
from silentauth.resource.verify import Principal, TokenAuthenticator

Renewer = Callable[[Principal], Awaitable[str | None]]
RENEWAL_HEADER = "New-Access-Token"


class BearerAuthMiddleware:
    """Authenticate every request that carries ``Authorization: Bearer``."""

    def __init__(
        self, app: ASGIApp, authenticator: TokenAuthenticator, renewer: Renewer | None = None
    ) -> None:
        self.app = app
        self.authenticator = authenticator
        self.renewer = renewer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                header = value.decode("latin-1")
                break
        state = scope.setdefault("state", {})
        principal: Principal | None = None
        try:
            principal = self.authenticator.authenticate(header)
            state["silentauth.principal"] = principal
        except BearerError as exc:
            state["silentauth.error"] = exc
        if principal is None or self.renewer is None:
            await self.app(scope, receive, send)
            return
        renewer, found = self.renewer, principal

        async def send_with_renewal(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] < 400:
                token = await renewer(found)
                if token is not None:
                    headers = list(message.get("headers", []))
                    headers.append((b"new-access-token", token.encode("ascii")))
                    headers.append((b"access-control-expose-headers", b"New-Access-Token"))
                    message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_renewal)


def require_auth(
    conn: HTTPConnection, *, scope: str | None = None, max_age: int | None = None, now: float | None = None
) -> Principal:
    """The caller's principal, or the RFC 6750 / RFC 9470 error to answer with."""
    state: dict[str, Any] = conn.scope.get("state", {})
    principal: Principal | None = state.get("silentauth.principal")
    if principal is None:
        error = state.get("silentauth.error")
        if isinstance(error, BearerError):
            raise error
        # No middleware ran: authenticate here from the app's authenticator.
        raise RuntimeError("BearerAuthMiddleware is not installed on this app")
    if scope is not None and scope not in principal.scopes:
        raise InsufficientScope(scope)
    if max_age is not None:
        import time

        current = time.time() if now is None else now
        if current - principal.auth_time > max_age:
            raise InsufficientUserAuthentication(max_age)
    return principal
