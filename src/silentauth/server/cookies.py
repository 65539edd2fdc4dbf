"""The browser's cookies: an HttpOnly refresh cookie and a CSRF cookie.

The refresh cookie is HttpOnly, Secure, SameSite=Strict and scoped to
``/auth``: script never sees it and other paths never carry it. The CSRF
proof is a MAC of the session id (see :meth:`RefreshTokens.csrf_token`): it is
readable by script (double submit) but bound to the session, so a cookie
tossed in from a sibling domain cannot forge it.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from silentauth.settings import Settings

CSRF_HEADER = "x-csrf-token"


def refresh_cookie_name(settings: Settings) -> str:
    return "__Secure-silentauth-refresh" if settings.cookie_secure else "silentauth-refresh"


def csrf_cookie_name(settings: Settings) -> str:
    return "__Host-silentauth-csrf" if settings.cookie_secure else "silentauth-csrf"


def set_session_cookies(
    response: Response, settings: Settings, refresh_token: str, csrf: str, max_age: int
) -> None:
    response.set_cookie(
        refresh_cookie_name(settings),
        refresh_token,
        max_age=max_age,
        path="/auth",
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


def clear_session_cookies(response: Response, settings: Settings) -> None:
    response.delete_cookie(
        refresh_cookie_name(settings), path="/auth", secure=settings.cookie_secure,
        httponly=True, samesite="strict",
    )
    response.delete_cookie(
        csrf_cookie_name(settings), path="/", secure=settings.cookie_secure, samesite="strict"
    )


def refresh_cookie(request: Request, settings: Settings) -> str | None:
    return request.cookies.get(refresh_cookie_name(settings))
