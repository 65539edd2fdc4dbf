"""``POST /auth/introspect``: token introspection (RFC 7662) for gateways and other languages.

A resource server that cannot verify ES256 JWTs itself, or an API gateway,
asks here whether a token is active. Callers authenticate as a registered
confidential client (``silentauth clients add``; RFC 7662 §2.1 requires some
authorization so the endpoint cannot be used to scan for tokens); anonymous
and public-client calls get 401 ``invalid_client``.

The session is read from the store on every call, so a token of a session
revoked on any instance is ``active: false`` at once, not after the
revocation feed's next poll. An access token is described to any
authenticated client (that is the endpoint's purpose); a refresh token only
to the client it was issued to (RFC 7662 §4: the server may limit what it
reveals), everyone else hears ``active: false``.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from silentauth.core.ports import SessionRecord
from silentauth.errors import BasicAuthFailed, InvalidGrant, InvalidToken
from silentauth.server.auth_routes import NO_STORE, runtime
from silentauth.server.client_auth import authenticate, client_credentials
from silentauth.server.parsing import read_form, require
from silentauth.server.runtime import Runtime

INACTIVE: dict[str, Any] = {"active": False}


async def introspect(request: Request) -> Response:
    """RFC 7662 §2: ``token`` (and an optional ``token_type_hint``) in, its state out."""
    rt = runtime(request)
    form = await read_form(request)
    creds = client_credentials(request.headers.get("authorization"), form)
    client = await authenticate(rt.clients, creds)
    if client is None or not client.confidential:
        # RFC 6749 §5.2: a client that sent no credentials is told how to authenticate.
        raise BasicAuthFailed("Introspection needs a registered confidential client's credentials.")
    value = require(form, "token")
    hint = form.get("token_type_hint", "")
    first = _refresh if hint == "refresh_token" else _access
    second = _access if first is _refresh else _refresh
    answer = await first(rt, value, client.client_id) or await second(rt, value, client.client_id)
    return JSONResponse(answer or INACTIVE, headers=NO_STORE)


async def _live_session(rt: Runtime, session_id: str) -> SessionRecord | None:
    session = await rt.store.get_session(session_id)
    return session if session is not None and session.is_live(rt.clock()) else None


async def _access(rt: Runtime, value: str, caller: str) -> dict[str, Any] | None:
    try:
        principal = rt.authenticator.check(value)
    except InvalidToken:
        return None
    if await _live_session(rt, principal.session_id) is None:
        return INACTIVE  # authentic, but its session is gone: no need to try it as a refresh token
    c = principal.claims
    return {
        "active": True,
        "token_type": "Bearer",
        **{k: c[k] for k in ("scope", "client_id", "sub", "aud", "iss", "exp", "iat", "jti", "sid", "auth_time") if k in c},
        "username": principal.username,
    }


async def _refresh(rt: Runtime, value: str, caller: str) -> dict[str, Any] | None:
    try:
        session_id, counter = rt.refresh_tokens.parse(value)
    except InvalidGrant:
        return None
    session = await _live_session(rt, session_id)
    # A spent token (counter behind) is no longer active, whatever the grace window.
    if session is None or session.client_id != caller or session.counter != counter:
        return INACTIVE
    return {
        "active": True,
        "token_type": "refresh_token",
        "scope": session.scope,
        "client_id": session.client_id,
        "sub": session.user_id,
        "username": session.username,
        "iss": rt.settings.issuer,
        "exp": int(min(session.idle_expires_at, session.expires_at)),
        "iat": int(session.rotated_at),
        "sid": session.id,
        "auth_time": int(session.auth_time),
    }


routes = [Route("/auth/introspect", introspect, methods=["POST"])]
