"""``/auth/*`` beside the token endpoint: browser login, refresh, logout, sessions, revocation.

Browsers log in and refresh here (refresh token in an HttpOnly cookie, a CSRF
proof in a header); signed-in users list and end their sessions; RFC 7009
revokes a token. ``POST /auth/token`` itself is
:mod:`silentauth.server.token_endpoint`, the feed ``/auth/revocations`` is in
:mod:`silentauth.server.verifier_routes`.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from silentauth.core.idempotency import HEADER as IDEMPOTENCY_HEADER
from silentauth.core.idempotency import parse_key
from silentauth.core.sessions import Grant
from silentauth.errors import (
    CSRFError,
    InvalidGrant,
    InvalidRequest,
    InvalidToken,
    NotFound,
    OAuthError,
)
from silentauth.resource.middleware import require_auth
from silentauth.server import cookies
from silentauth.server.client_auth import authenticate, client_credentials
from silentauth.server.parsing import (
    read_form,
    read_json_object,
    remember_flag,
    require,
    require_json_type,
)
from silentauth.server.runtime import Runtime

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


def client_ip(request: Request) -> str:
    """The client's address: the peer's, or the one a trusted proxy reported (see ``server.proxy``)."""
    return request.client.host if request.client else ""


def _browser_response(rt: Runtime, grant: Grant, root_path: str = "") -> JSONResponse:
    csrf = rt.refresh_tokens.csrf_token(grant.session.id)
    response = JSONResponse(
        {
            "access_token": grant.access_token,
            "token_type": "Bearer",
            "expires_in": grant.expires_in,
            "scope": grant.scope,
            "csrf_token": csrf,
        },
        headers=NO_STORE,
    )
    if grant.refresh_token:  # a lifetime hook may give a client no refresh
        max_age = max(1, int(grant.session.expires_at - rt.clock()))
        cookies.set_session_cookies(response, rt.settings, grant.refresh_token, csrf, max_age, root_path)
    return response


def _check_origin(request: Request, rt: Runtime) -> None:
    """Refuse a cookie-setting or cookie-reading request unless a browser page we trust sent it.

    Browsers send ``Origin`` on every POST (Fetch standard), same-origin ones
    included, so a missing header means a non-browser client or a stripped
    request: neither has any business with the session cookies. The own origin
    is the request's scheme and ``Host``, as the browser addressed us (the
    scheme as a trusted proxy reports it), or the ``ISSUER``'s origin, which is
    the public one behind a proxy that terminates TLS and speaks plain HTTP on.
    """
    origin = request.headers.get("origin")
    if origin is None:
        raise CSRFError("The Origin header is required on the browser endpoints (cookie login, refresh, logout).")
    # Browsers send origins in lower case; CORS_ORIGINS is normalized to it.
    origin, own = origin.lower(), f"{request.url.scheme}://{request.headers.get('host', '')}".lower()
    settings = rt.settings
    if origin != own and origin != settings.public_origin and origin not in settings.cors_origins:
        raise CSRFError("Cross-origin request refused: the origin is neither this service's nor in CORS_ORIGINS.")


def _check_no_simple_body(request: Request) -> None:
    """Refuse a body typed as a browser may send it cross-site without a preflight.

    ``text/plain``, form and multipart bodies need no CORS preflight, so a
    foreign page can send them; only ``application/json`` forces one. The
    refresh route reads an optional JSON body, the logout routes none, so only a
    declared type is checked.
    """
    if "content-type" in request.headers:
        require_json_type(request.headers["content-type"])


def _resources(body: dict[str, Any]) -> str | None:
    """RFC 8707 ``resource`` of a JSON body: one URI or a list of them, space-separated as forms keep it."""
    value = body.get("resource")
    if value is None:
        return None
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and n and n.split() == [n] for n in names):
        raise InvalidRequest("'resource' must be a URI or a non-empty list of URIs.")
    return " ".join(names)


async def login(request: Request) -> Response:
    """Browser login: JSON in, access token out, refresh token in an HttpOnly cookie."""
    rt = runtime(request)
    _check_origin(request, rt)
    require_json_type(request.headers.get("content-type", ""))
    body = await read_json_object(request)
    grant = await rt.service.login(
        require(body, "username"),
        require(body, "password"),
        scope=body.get("scope") if isinstance(body.get("scope"), str) else None,
        client_id="browser",
        resource=_resources(body),
        user_agent=request.headers.get("user-agent", ""),
        ip=client_ip(request),
        remember=remember_flag(body.get("remember")),
        device_token=cookies.device_cookie(request, rt.settings),
    )
    root_path = request.scope.get("root_path", "")
    response = _browser_response(rt, grant, root_path)
    if grant.device_token:
        cookies.set_device_cookie(response, rt.settings, grant.device_token, root_path)
    return response


def _cookie_session(request: Request, rt: Runtime) -> tuple[str, str]:
    """(refresh token, session id) from the cookie, after the CSRF proof is checked."""
    _check_origin(request, rt)
    _check_no_simple_body(request)
    refresh_token = cookies.refresh_cookie(request, rt.settings)
    if not refresh_token:
        raise InvalidGrant("No refresh cookie: log in first.")
    session_id = rt.service.session_of(refresh_token)
    proof = request.headers.get(cookies.CSRF_HEADER, "")
    if not proof or not rt.refresh_tokens.check_csrf(session_id, proof):
        raise CSRFError()
    return refresh_token, session_id


async def refresh(request: Request) -> Response:
    """Browser refresh: the cookie plus the CSRF header; the cookie rotates."""
    rt = runtime(request)
    # A failed refresh does not clear the cookies: the jar may already hold a
    # newer login's cookie (another tab), which a late 400 would wipe out.
    key = parse_key(request.headers.get(IDEMPOTENCY_HEADER))
    refresh_token, session_id = _cookie_session(request, rt)
    # An optional JSON body may narrow the resources (RFC 8707); none keeps the session's.
    has_body = "content-type" in request.headers and request.headers.get("content-length") != "0"
    body = await read_json_object(request) if has_body else {}
    grant = await rt.service.refresh(
        refresh_token, ip=client_ip(request), resource=_resources(body), idempotency_key=key
    )
    for observe in rt.browser_refresh_observers:
        observe(session_id, refresh_token, grant)
    return _browser_response(rt, grant, request.scope.get("root_path", ""))


async def logout(request: Request) -> Response:
    """End this session: by refresh cookie (with CSRF proof) or by bearer token."""
    rt = runtime(request)
    if request.headers.get("authorization"):
        principal = require_auth(request)
        await rt.service.revoke(principal.session_id, "logout")
    elif cookies.refresh_cookie(request, rt.settings):
        _, session_id = _cookie_session(request, rt)
        await rt.service.revoke(session_id, "logout")
    else:
        raise InvalidRequest("Send the refresh cookie or a bearer token.")
    response = Response(status_code=204, headers=NO_STORE)
    cookies.clear_session_cookies(response, rt.settings, request.scope.get("root_path", ""))
    return response


async def logout_all(request: Request) -> Response:
    rt = runtime(request)
    principal = require_auth(request)
    await rt.service.revoke_user(principal.subject, "logout_all")
    response = Response(status_code=204, headers=NO_STORE)
    cookies.clear_session_cookies(response, rt.settings, request.scope.get("root_path", ""))
    return response


async def list_sessions(request: Request) -> Response:
    rt = runtime(request)
    principal = require_auth(request)
    rows = await rt.service.sessions(principal.subject)
    return JSONResponse(
        [
            {
                "id": s.id,
                "created": s.created_at,
                "last_used": s.last_used_at,
                "user_agent": s.user_agent,
                "ip": s.ip,
                "client_id": s.client_id,
                "expires_at": s.expires_at,
                "current": s.id == principal.session_id,
            }
            for s in rows
        ],
        headers=NO_STORE,
    )


async def delete_session(request: Request) -> Response:
    rt = runtime(request)
    principal = require_auth(request)
    session_id = request.path_params["session_id"]
    if not await rt.service.revoke_owned(principal.subject, session_id, "device"):
        raise NotFound("No such session of yours.")
    return Response(status_code=204, headers=NO_STORE)


async def revoke(request: Request) -> Response:
    """RFC 7009: revoke a refresh or access token; always 200 for a well-formed request.

    A client revokes only its own tokens (RFC 7009 §2.1): a confidential
    client's after authenticating as it, a public client's without a secret
    (whoever holds a public client's token can use it anyway). A token of
    another client is left alone, answered 200 like an invalid one so the
    answer tells nothing about it.
    """
    rt = runtime(request)
    form = await read_form(request)
    creds = client_credentials(request.headers.get("authorization"), form)
    client = await authenticate(rt.clients, creds)
    value = require(form, "token")
    session_id = token_session(rt, value, form.get("token_type_hint", ""))
    if session_id is not None:
        session = await rt.store.get_session(session_id)
        owner = session.client_id if session is not None else None
        if owner is not None and (
            owner == client.client_id if client is not None else not await rt.clients.is_confidential(owner)
        ):
            await rt.service.revoke(session_id, "logout")
    return Response(status_code=200, headers=NO_STORE)


def token_session(rt: Runtime, value: str, hint: str) -> str | None:
    """The session of an authentic refresh or access token (``hint`` picks the first try)."""
    order = ("access", "refresh") if hint == "access_token" else ("refresh", "access")
    for kind in order:
        try:
            if kind == "refresh":
                return rt.service.session_of(value)
            return rt.authenticator.check(value).session_id
        except (InvalidGrant, InvalidToken):
            continue
    return None


routes = [
    Route("/auth/login", login, methods=["POST"]),
    Route("/auth/refresh", refresh, methods=["POST"]),
    Route("/auth/logout", logout, methods=["POST"]),
    Route("/auth/logout-all", logout_all, methods=["POST"]),
    Route("/auth/sessions", list_sessions, methods=["GET"]),
    Route("/auth/sessions/{session_id}", delete_session, methods=["DELETE"]),
    Route("/auth/revoke", revoke, methods=["POST"]),
]

__all__ = ["OAuthError", "routes"]
