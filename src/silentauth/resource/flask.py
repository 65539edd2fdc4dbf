"""silentauth access tokens in Flask (``pip install silentauth[flask]``).

::

    auth = SilentAuth(app, issuer="https://auth.example.com")

    @app.get("/whoami")
    @auth.required()
    def whoami():
        return {"sub": current_principal().subject}

    @app.post("/transfer")
    @auth.required("payments", max_age=300)   # scope + RFC 9470 step-up
    def transfer(): ...

Verification is the Starlette kit's (:class:`ThreadedAuthenticator` around the
same :class:`RemoteAuthenticator`: one claims cache, JWKS refetch on an unknown
``kid``, revocation feed followed by default), and refusals are the same bytes:
RFC 6750 401/403 with ``WWW-Authenticate``, RFC 9470 ``max_age`` challenges,
400 for a ``Bearer`` header without a token.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar, cast

from flask import Flask, Response, g, request

from silentauth.clock import Clock, system_clock
from silentauth.errors import BearerError, render_error
from silentauth.resource.threaded import ThreadedAuthenticator
from silentauth.resource.verify import Principal

F = TypeVar("F", bound=Callable[..., Any])
_KEY = "silentauth_principal"


def error_response(error: BearerError) -> Response:
    """The RFC 6750 / 9470 answer for ``error``, byte for byte as the Starlette kit's."""
    rendered = render_error(error)
    headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in rendered.headers if k != b"content-length"]
    return Response(rendered.body, status=rendered.status, headers=headers)


def current_principal() -> Principal:
    """The principal of the current request (inside a view decorated with :meth:`SilentAuth.required`)."""
    principal = g.get(_KEY)
    if not isinstance(principal, Principal):
        raise RuntimeError("current_principal() outside a view protected by SilentAuth.required()")
    return principal


class SilentAuth:
    """A Flask extension: ``SilentAuth(app, issuer=...)`` or ``init_app`` later."""

    def __init__(
        self,
        app: Flask | None = None,
        *,
        issuer: str | None = None,
        audience: str = "silentauth",
        authenticator: ThreadedAuthenticator | None = None,
        clock: Clock = system_clock,
        **options: Any,
    ) -> None:
        if authenticator is None:
            if issuer is None:
                raise TypeError("SilentAuth needs issuer= or authenticator=")
            authenticator = ThreadedAuthenticator.from_issuer(issuer, audience, clock=clock, **options)
        self.authenticator = authenticator
        self.clock = clock
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Register the extension on ``app`` (``app.extensions["silentauth"]``)."""
        app.extensions["silentauth"] = self

    def required(self, *scopes: str, max_age: int | None = None) -> Callable[[F], F]:
        """Decorate a view: 401 without a valid token, 403 without ``scopes``, 401 step-up past ``max_age``."""

        demands = bool(scopes) or max_age is not None

        def decorate(view: F) -> F:
            @functools.wraps(view)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                try:
                    # The WSGI variable itself: request.headers would build a header view first.
                    principal = self.authenticator.authenticate(request.environ.get("HTTP_AUTHORIZATION"))
                    if demands:
                        principal.require(*scopes, max_age=max_age, now=self.clock())
                except BearerError as exc:
                    return error_response(exc)
                setattr(g, _KEY, principal)
                return view(*args, **kwargs)

            return cast(F, wrapper)

        return decorate
