"""``/auth/service/*``: the application's back end manages sessions over HTTP.

For applications in other languages: after their own login they start a
session here, and they list, end and revoke sessions, as the in-process API
(:class:`~silentauth.server.embed.SilentAuth`) does for Python.

These routes act for any user, so they answer only to the service credential
(``SERVICE_CREDENTIAL``, at least 32 characters) sent as
``Authorization: Service <credential>``, compared in constant time. A user's
access token is never accepted here, whatever it carries; without the
setting the routes do not exist (404).
"""

from __future__ import annotations

import hmac

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from silentauth.errors import InvalidRequest, NotFound, ServiceCredentialRequired
from silentauth.server.app_sessions import check_id, session_view, start_session
from silentauth.server.auth_routes import NO_STORE
from silentauth.server.parsing import read_json_object, remember_flag, require_json_type
from silentauth.server.runtime import Runtime

SCHEME = "service"


def _authorize(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    expected = rt.settings.service_credential
    if not expected:
        raise NotFound()
    scheme, _, given = request.headers.get("authorization", "").strip().partition(" ")
    if scheme.lower() != SCHEME or not hmac.compare_digest(given.strip().encode(), expected.encode()):
        raise ServiceCredentialRequired()
    return rt


def _optional_str(body: dict[str, object], name: str, limit: int = 512) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise InvalidRequest(f"{name!r} must be a string of at most {limit} characters.")
    return value


async def create_session(request: Request) -> Response:
    """Start a session for a user the application authenticated: 201 and the token set."""
    rt = _authorize(request)
    require_json_type(request.headers.get("content-type", ""))
    body = await read_json_object(request)
    started = await start_session(
        rt,
        check_id("user_id", body.get("user_id")),
        username=_optional_str(body, "username", 256) or "",
        scope=_optional_str(body, "scope", 1024),
        client_id=_optional_str(body, "client_id", 128) or "app",
        device=_optional_str(body, "device") or "",
        ip=_optional_str(body, "ip", 64) or "",
        remember=remember_flag(body.get("remember")),
        # The cookies' path follows where this service is served (a mount or proxy prefix).
        root_path=request.scope.get("root_path", ""),
    )
    return JSONResponse(started.as_json(), status_code=201, headers=NO_STORE)


async def list_sessions(request: Request) -> Response:
    """The live sessions of a user."""
    rt = _authorize(request)
    user_id = check_id("user_id", request.path_params["user_id"])
    rows = await rt.service.sessions(user_id)
    return JSONResponse([session_view(s) for s in rows], headers=NO_STORE)


async def end_session(request: Request) -> Response:
    """End one session (its refresh token and its access tokens): 204, or 404."""
    rt = _authorize(request)
    session_id = check_id("session_id", request.path_params["session_id"])
    s = await rt.store.get_session(session_id)
    if s is None or not s.is_live(rt.clock()):
        raise NotFound("No such live session.")
    await rt.service.revoke(session_id, "admin")
    return Response(status_code=204, headers=NO_STORE)


async def revoke_user(request: Request) -> Response:
    """End every session of a user; ``?keep=<session id>`` spares the one that changed the password."""
    rt = _authorize(request)
    user_id = check_id("user_id", request.path_params["user_id"])
    keep = request.query_params.get("keep")
    if request.query_params.get("reason") == "password_change":
        count = await rt.service.password_changed(user_id, keep_session=keep)
    else:
        count = await rt.service.revoke_user(user_id, "admin")
    return JSONResponse({"revoked": count}, headers=NO_STORE)


routes = [
    Route("/auth/service/sessions", create_session, methods=["POST"]),
    Route("/auth/service/sessions/{session_id}", end_session, methods=["DELETE"]),
    Route("/auth/service/users/{user_id}/sessions", list_sessions, methods=["GET"]),
    Route("/auth/service/users/{user_id}/sessions", revoke_user, methods=["DELETE"]),
]
