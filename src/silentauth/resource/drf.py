"""silentauth access tokens in Django REST framework (``pip install silentauth[django]``).

``settings.py``::

    SILENTAUTH = {"ISSUER": "https://auth.example.com", "AUDIENCE": "silentauth"}
    REST_FRAMEWORK = {
        "DEFAULT_AUTHENTICATION_CLASSES": ["silentauth.resource.drf.SilentAuthAuthentication"],
        "EXCEPTION_HANDLER": "silentauth.resource.drf.exception_handler",
    }

Views::

    class Transfer(APIView):
        permission_classes = [require("payments", max_age=300)]   # scope + RFC 9470 step-up

``request.auth`` is the :class:`Principal`, ``request.user`` a
:class:`SilentAuthUser`. Verification is the Starlette kit's
(:class:`ThreadedAuthenticator` around the same :class:`RemoteAuthenticator`:
one claims cache, JWKS refetch on an unknown ``kid``, the revocation feed
followed by default); with the exception handler installed, refusals are the
same bytes as the Starlette kit's (RFC 6750 / RFC 9470, ``Cache-Control: no-store``).
``SILENTAUTH["OPTIONS"]`` passes keyword options to ``from_issuer``.
"""

from __future__ import annotations

import threading
from typing import Any

from django.conf import settings
from django.http import HttpResponse
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from silentauth.clock import system_clock
from silentauth.errors import BearerError, MissingToken, render_error
from silentauth.resource.threaded import ThreadedAuthenticator
from silentauth.resource.verify import Principal

_ERROR_ATTR = "_silentauth_error"
_lock = threading.Lock()
_authenticator: ThreadedAuthenticator | None = None


def authenticator() -> ThreadedAuthenticator:
    """The process's authenticator, built from ``settings.SILENTAUTH`` on first use."""
    global _authenticator
    with _lock:
        if _authenticator is None:
            conf: dict[str, Any] = getattr(settings, "SILENTAUTH", {})
            _authenticator = ThreadedAuthenticator.from_issuer(
                conf["ISSUER"], conf.get("AUDIENCE", "silentauth"), **conf.get("OPTIONS", {})
            )
        return _authenticator


def reset() -> None:
    """Stop the authenticator; the next request builds one from the settings again."""
    global _authenticator
    with _lock:
        old, _authenticator = _authenticator, None
    if old is not None:
        old.stop()


class SilentAuthUser:
    """``request.user`` for a verified token: authenticated, named by its claims."""

    is_authenticated = True
    is_anonymous = False

    def __init__(self, principal: Principal) -> None:
        self.principal = principal
        self.pk = self.id = principal.subject
        self.username = principal.username

    def __str__(self) -> str:
        return self.username or self.principal.subject


class BearerAPIError(exceptions.AuthenticationFailed):
    """A :class:`BearerError` carried through DRF, with its status and challenge."""

    def __init__(self, error: BearerError, request: Request) -> None:
        super().__init__(detail=error.as_dict())
        self.error = error
        self.status_code = error.status_code
        # DRF asks the authentication class for the challenge of a 401/403; it finds this.
        setattr(request, _ERROR_ATTR, error)


class SilentAuthAuthentication(BaseAuthentication):
    """Authenticates ``Authorization: Bearer`` silentauth access tokens."""

    def authenticate(self, request: Request) -> tuple[SilentAuthUser, Principal] | None:
        header = request.META.get("HTTP_AUTHORIZATION")
        if not header or header.strip().partition(" ")[0].lower() != "bearer":
            return None  # no token (or another scheme): anonymous, the permissions decide
        try:
            principal = authenticator().authenticate(header)
        except BearerError as exc:
            raise BearerAPIError(exc, request) from None
        return SilentAuthUser(principal), principal

    def authenticate_header(self, request: Request) -> str:
        error = getattr(request, _ERROR_ATTR, None)
        return error.challenge() if isinstance(error, BearerError) else "Bearer"


def require(*scopes: str, max_age: int | None = None) -> type[BasePermission]:
    """A permission class: a token (401), each of ``scopes`` (403), a login within ``max_age`` s (401, RFC 9470)."""

    demands = bool(scopes) or max_age is not None

    class Required(BasePermission):
        def has_permission(self, request: Request, view: Any) -> bool:
            principal = request.auth
            try:
                if not isinstance(principal, Principal):
                    raise MissingToken()
                if demands:  # IsTokenAuthenticated has none: no clock read per request
                    principal.require(*scopes, max_age=max_age, now=system_clock())
            except BearerError as exc:
                raise BearerAPIError(exc, request) from None
            return True

    Required.__name__ = Required.__qualname__ = f"require({', '.join(map(repr, scopes))})"
    return Required


IsTokenAuthenticated = require()
"""``permission_classes = [IsTokenAuthenticated]``: any valid token."""


def exception_handler(exc: Exception, context: dict[str, Any]) -> HttpResponse | None:
    """DRF's handler, but a :class:`BearerAPIError` is answered exactly as the Starlette kit answers."""
    if isinstance(exc, BearerAPIError):
        rendered = render_error(exc.error)
        response = HttpResponse(rendered.body, status=rendered.status, content_type="application/json")
        for name, value in rendered.headers:
            if name not in (b"content-length", b"content-type"):
                response[name.decode("latin-1")] = value.decode("latin-1")
        return response
    # Imported here: rest_framework.views reads the settings at import time.
    from rest_framework.views import exception_handler as drf_exception_handler

    result: HttpResponse | None = drf_exception_handler(exc, context)
    return result
