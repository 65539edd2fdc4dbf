"""The browser's cookies: an HttpOnly refresh cookie and a CSRF cookie.

With ``COOKIE_SECURE`` on (the default) both cookies carry the ``__Host-`` prefix
(RFC 6265bis section 4.1.3.2): the browser accepts such a cookie only with
``Secure``, ``Path=/`` and no ``Domain``, i.e. only from this very host. A sibling
host (``evil.example.test`` next to ``app.example.test``) can set a ``__Secure-``
or an unprefixed cookie for the parent domain, but never a ``__Host-`` one, and the
server reads no other name: nothing a sibling can toss in is ever read.

The price of ``__Host-`` is ``Path=/``: the refresh cookie rides along on every
request to this host, not only ``/auth``. It stays HttpOnly and SameSite=Strict,
and nothing outside ``/auth`` reads or logs it.

The CSRF proof is a MAC of the session id (see :meth:`RefreshTokens.csrf_token`):
readable by script (double submit) but bound to the session, so a proof for one
session never unlocks another.

A third cookie, the device cookie, holds the known-device token of the last
user who logged in with this browser (:mod:`silentauth.core.devices`): HttpOnly,
SameSite=Strict, read only by the login route. It outlives log-outs on purpose:
it is what keeps its owner's logins open while someone guesses passwords for
the account from the same address.

With ``COOKIE_SECURE`` off (plain-HTTP development only) the names are unprefixed
and the refresh cookie keeps ``Path=/auth``: any host of the same site can then
plant both cookies (see SECURITY.md).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from silentauth.settings import Settings

CSRF_HEADER = "x-csrf-token"


def refresh_cookie_name(settings: Settings) -> str:
    """The refresh cookie's name: ``__Host-`` prefixed unless cookies are insecure."""
    return "__Host-silentauth-refresh" if settings.cookie_secure else "silentauth-refresh"


def refresh_cookie_path(settings: Settings, root_path: str = "") -> str:
    """``/`` as ``__Host-`` demands; the narrower ``/auth`` where no prefix binds it.

    ``root_path`` is where the service is mounted in a host application
    (``/sa`` for ``app.mount("/sa", ...)``): the browser then refreshes at
    ``/sa/auth/refresh``, so the narrow path must carry the prefix too.
    """
    return "/" if settings.cookie_secure else f"{root_path.rstrip('/')}/auth"


def csrf_cookie_name(settings: Settings) -> str:
    """The CSRF cookie's name: ``__Host-`` prefixed unless cookies are insecure."""
    return "__Host-silentauth-csrf" if settings.cookie_secure else "silentauth-csrf"


def set_session_cookies(
    response: Response, settings: Settings, refresh_token: str, csrf: str, max_age: int, root_path: str = ""
) -> None:
    """Set both cookies for a new or rotated session."""
    response.set_cookie(
        refresh_cookie_name(settings),
        refresh_token,
        max_age=max_age,
        path=refresh_cookie_path(settings, root_path),
        secure=settings.cookie_secure,
        httponly=True,
        samesite="strict",
    )
    response.set_cookie(
        csrf_cookie_name(settings),
        csrf,
        max_age=max_age,
        path="/",
        secure=settings.cookie_secure,
        httponly=False,
        samesite="strict",
    )


def clear_session_cookies(response: Response, settings: Settings, root_path: str = "") -> None:
    """Expire both cookies (attributes must match the ones they were set with)."""
    response.delete_cookie(
        refresh_cookie_name(settings), path=refresh_cookie_path(settings, root_path),
        secure=settings.cookie_secure, httponly=True, samesite="strict",
    )
    response.delete_cookie(
        csrf_cookie_name(settings), path="/", secure=settings.cookie_secure, samesite="strict"
    )


def refresh_cookie(request: Request, settings: Settings) -> str | None:
    """The refresh token from this host's own cookie; any other name is ignored."""
    return request.cookies.get(refresh_cookie_name(settings))


def device_cookie_name(settings: Settings) -> str:
    """The device cookie's name: ``__Host-`` prefixed unless cookies are insecure."""
    return "__Host-silentauth-device" if settings.cookie_secure else "silentauth-device"


def set_device_cookie(response: Response, settings: Settings, token: str, root_path: str = "") -> None:
    """Remember this browser as a known device of the user who just logged in."""
    response.set_cookie(
        device_cookie_name(settings),
        token,
        max_age=settings.known_device_ttl,
        path=refresh_cookie_path(settings, root_path),
        secure=settings.cookie_secure,
        httponly=True,
        samesite="strict",
    )


def device_cookie(request: Request, settings: Settings) -> str | None:
    """The device token from this host's own device cookie."""
    return request.cookies.get(device_cookie_name(settings))
