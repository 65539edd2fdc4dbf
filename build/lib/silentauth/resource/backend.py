"""A Starlette ``AuthenticationBackend`` for apps built on ``AuthenticationMiddleware``.

::

    from starlette.middleware.authentication import AuthenticationMiddleware

    backend = SilentAuthBackend(TokenAuthenticator.from_issuer(ISSUER))
    app.add_middleware(
        AuthenticationMiddleware, backend=backend, on_error=SilentAuthBackend.on_error
    )

``request.user`` is then a :class:`PrincipalUser`, ``request.auth.scopes`` the
token's scopes plus ``authenticated`` (so ``@requires("payments")`` works), and a bad token is
answered 401 with an RFC 6750 ``WWW-Authenticate`` challenge. A request
without a token stays anonymous (``UnauthenticatedUser``), as Starlette
expects; :func:`require_auth` turns that into 401 where a route needs it.
:class:`BearerAuthMiddleware` remains the choice for server-pushed renewal.
"""

from __future__ import annotations

from starlette.authentication import (
    AuthCredentials,
    AuthenticationBackend,
    AuthenticationError,
    BaseUser,
)
from starlette.requests import HTTPConnection
from starlette.responses import Response

from silentauth.errors import BearerError, InvalidToken
from silentauth.resource.middleware import PrincipalUser
from silentauth.resource.responses import error_response
from silentauth.resource.verify import TokenAuthenticator


class SilentAuthBackend(AuthenticationBackend):
    """Authenticates ``Authorization: Bearer`` access tokens for Starlette."""

    def __init__(self, authenticator: TokenAuthenticator) -> None:
        self.authenticator = authenticator

    async def authenticate(
        self, conn: HTTPConnection
    ) -> tuple[AuthCredentials, BaseUser] | None:
        header = conn.headers.get("authorization")
        if not header:
            return None
        scheme, _, _ = header.strip().partition(" ")
        if scheme.lower() != "bearer":
            return None  # another backend's scheme (Basic, ...): not ours to judge
        try:
            principal = await self.authenticator.aauthenticate(header)
        except BearerError as exc:
            # Starlette's middleware catches only AuthenticationError; the RFC 6750
            # error rides along as its cause, for on_error to render.
            raise AuthenticationError(exc.error_description) from exc
        # "authenticated" is Starlette's convention for ``@requires("authenticated")``.
        scopes = ["authenticated", *sorted(principal.scopes)]
        return AuthCredentials(scopes), PrincipalUser(principal)

    @staticmethod
    def on_error(conn: HTTPConnection, exc: Exception) -> Response:
        """``on_error`` for ``AuthenticationMiddleware``: RFC 6750 instead of plain 400."""
        cause = exc.__cause__
        return error_response(cause if isinstance(cause, BearerError) else InvalidToken())
