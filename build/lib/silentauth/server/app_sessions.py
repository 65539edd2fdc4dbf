"""Sessions the application starts itself, after its own login.

An application that authenticates users by its own means (a one-time code,
an SSO callback, a magic link, WebAuthn) hands the result to silentauth
here and gets a token set back; for a browser, also the cookies to set on
its own response, so the browser client refreshes from then on as after a
silentauth login. As SuperTokens' ``createNewSession(userId, payload)`` does.
The in-process API (:class:`~silentauth.server.embed.SilentAuth`) and the
server-to-server endpoints (:mod:`silentauth.server.service_routes`) both
come here, so they cannot drift apart.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Any

from starlette.responses import Response

from silentauth.core.identity import Identity
from silentauth.core.ports import SessionRecord
from silentauth.errors import InvalidRequest
from silentauth.server import cookies
from silentauth.server.runtime import Runtime

MAX_ID_LENGTH = 256


@dataclass(frozen=True)
class StartedSession:
    """A session the application started: its tokens and, for browsers, its cookies.

    ``set_cookie`` holds ``Set-Cookie`` header values; :meth:`apply` adds them
    to a Starlette/FastAPI response. ``refresh_token`` is ``""`` when the
    lifetime hook gives the client no refresh.
    """

    session_id: str
    access_token: str
    expires_in: int
    refresh_token: str
    scope: str
    csrf_token: str
    set_cookie: tuple[str, ...]

    def apply(self, response: Response) -> Response:
        """Add the session cookies to ``response`` (the application's own answer)."""
        for value in self.set_cookie:
            response.headers.append("set-cookie", value)
        return response

    def as_json(self) -> dict[str, Any]:
        """The token set as the token endpoint spells it, plus the session id and cookies."""
        out: dict[str, Any] = {
            "session_id": self.session_id,
            "access_token": self.access_token,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
            "scope": self.scope,
            "csrf_token": self.csrf_token,
            "set_cookie": list(self.set_cookie),
        }
        if self.refresh_token:
            out["refresh_token"] = self.refresh_token
        return out


def check_id(name: str, value: object) -> str:
    """A user or session id from the application: a non-empty printable string."""
    if not isinstance(value, str) or not value or len(value) > MAX_ID_LENGTH:
        raise InvalidRequest(f"{name!r} must be a string of 1-{MAX_ID_LENGTH} characters.")
    if any(unicodedata.category(c).startswith("C") for c in value):
        raise InvalidRequest(f"{name!r} contains control characters.")
    return value


async def start_session(
    rt: Runtime,
    user_id: str,
    *,
    username: str = "",
    scope: str | None = None,
    client_id: str = "app",
    device: str = "",
    ip: str = "",
    remember: bool | None = None,
    root_path: str = "",
) -> StartedSession:
    """Start a session for ``user_id``, whom the application has authenticated itself.

    The claims and lifetime hooks are asked as at a password login, the
    per-user session limit applies, and ``root_path`` is where the service is
    mounted (for the refresh cookie's path when cookies are not ``Secure``).
    """
    identity = Identity(check_id("user_id", user_id), username or user_id)
    grant = await rt.service.start_session(
        identity, scope=scope, client_id=client_id, user_agent=device, ip=ip, remember=remember
    )
    csrf = rt.refresh_tokens.csrf_token(grant.session.id)
    jar = Response()
    if grant.refresh_token:
        max_age = max(1, int(grant.session.expires_at - rt.clock()))
        cookies.set_session_cookies(jar, rt.settings, grant.refresh_token, csrf, max_age, root_path)
    set_cookie = tuple(v.decode("latin-1") for k, v in jar.raw_headers if k == b"set-cookie")
    return StartedSession(
        grant.session.id, grant.access_token, grant.expires_in, grant.refresh_token, grant.scope, csrf, set_cookie
    )


def session_view(s: SessionRecord) -> dict[str, Any]:
    """One session as the listing endpoints show it."""
    return {
        "id": s.id,
        "user_id": s.user_id,
        "client_id": s.client_id,
        "created": s.created_at,
        "last_used": s.last_used_at,
        "expires_at": s.expires_at,
        "user_agent": s.user_agent,
        "ip": s.ip,
    }
