"""The demo API (``/api/*``), the demo page, and the demo-mode helpers under ``/auth/demo``.

``/api/*`` is protected by the resource kit like any application's API. The
``/auth/demo/*`` routes exist for the demo page alone and answer 404 unless the
service runs with ``SILENTAUTH_DEMO`` on (``silentauth serve --demo``):

- ``GET /auth/demo``: whether demo mode is on (answered in every mode), and the
  reuse grace window.
- ``GET /auth/demo/old-refresh-token``: this session's previous refresh token, the
  one its last rotation replaced, as a thief who copied it would hold it (``null``
  before the first rotation). The page
  replays it at ``POST /auth/token`` to show reuse detection (RFC 9700 §4.14.2).
  Only demo mode keeps these tokens, in memory (:class:`ReplayStash`).
- ``GET /auth/demo/session-end``: why the session in this browser's refresh cookie
  ended (revoked and why, or expired), so the page can say it in words.

They live under ``/auth`` because the refresh cookie's path is ``/auth`` when
``COOKIE_SECURE`` is off.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from silentauth.clock import Clock
from silentauth.core.sessions import Grant
from silentauth.errors import InvalidGrant
from silentauth.resource.middleware import require_auth
from silentauth.server import cookies
from silentauth.server.auth_routes import NO_STORE, runtime
from silentauth.server.parsing import read_json
from silentauth.server.runtime import Runtime

STATIC = Path(__file__).resolve().parent.parent / "web" / "static"
NOT_DEMO = {"error": "not_found", "error_description": "Only in demo mode (silentauth serve --demo)."}


class ReplayStash:
    """Demo mode only: each session's previous refresh token, for the replay action.

    Filled by the browser refresh route after each rotation (see :func:`install`), so
    it holds exactly what a thief who copied the cookie before that rotation would
    hold. Bounded: the oldest sessions are forgotten first.
    """

    def __init__(self, clock: Clock, limit: int = 10_000) -> None:
        self._clock = clock
        self._limit = limit
        self._old: OrderedDict[str, tuple[str, float]] = OrderedDict()

    def keep(self, session_id: str, presented: str, grant: Grant) -> None:
        """Remember ``presented`` if this refresh replaced it (a grace answer replaces nothing)."""
        if grant.outcome != "rotated":
            return
        self._old[session_id] = (presented, self._clock())
        self._old.move_to_end(session_id)
        while len(self._old) > self._limit:
            self._old.popitem(last=False)

    def get(self, session_id: str) -> tuple[str, float] | None:
        """(the replaced refresh token, when it was replaced), if any."""
        return self._old.get(session_id)

    def __len__(self) -> int:
        return len(self._old)


def install(app: Starlette, rt: Runtime) -> None:
    """Wire the demo-mode helpers; without ``settings.demo`` nothing is kept anywhere."""
    if not rt.settings.demo:
        return
    stash = ReplayStash(rt.clock)
    rt.browser_refresh_observers.append(stash.keep)
    app.state.demo_replay = stash


def replay_stash(request: Request) -> ReplayStash | None:
    """The app's stash, or None outside demo mode."""
    stash: ReplayStash | None = getattr(request.app.state, "demo_replay", None)
    return stash


async def me(request: Request) -> Response:
    p = require_auth(request)
    return JSONResponse(
        {
            "sub": p.subject,
            "username": p.claims.get("preferred_username", ""),
            "session_id": p.session_id,
            "exp": p.claims["exp"],
            "scope": p.claims["scope"],
            "auth_time": p.claims["auth_time"],
        }
    )


async def echo(request: Request) -> Response:
    require_auth(request)
    return JSONResponse(await read_json(request, limit=1024 * 1024))


async def payments(request: Request) -> Response:
    rt = runtime(request)
    p = require_auth(request, max_age=rt.settings.step_up_max_age, now=rt.clock())
    return JSONResponse({"status": "accepted", "sub": p.subject, "auth_time": p.auth_time})


async def demo_info(request: Request) -> Response:
    """``GET /auth/demo``: whether demo mode is on and, if so, the numbers the page explains.

    Answered in every mode (``{"demo": false}`` outside demo mode), so the demo page
    served by a production instance learns it without a 404 in the console.
    """
    rt = runtime(request)
    if replay_stash(request) is None:
        return JSONResponse({"demo": False}, headers=NO_STORE)
    s = rt.settings
    return JSONResponse(
        {"demo": True, "reuse_grace": s.reuse_grace, "access_ttl": s.access_ttl, "renew_within": s.renew_within},
        headers=NO_STORE,
    )


async def old_refresh_token(request: Request) -> Response:
    """``GET /auth/demo/old-refresh-token``: the signed-in session's replaced refresh token."""
    rt = runtime(request)
    stash = replay_stash(request)
    if stash is None:
        return JSONResponse(NOT_DEMO, 404)
    principal = require_auth(request)
    kept = stash.get(principal.session_id)
    if kept is None:
        # A 200, not a 409: the page asks this as a question, and the browser would log
        # any 4xx as a console error.
        return JSONResponse(
            {
                "refresh_token": None,
                "detail": "This session has not refreshed yet, so no refresh token has been "
                "replaced: wait for a refresh and try again.",
            },
            headers=NO_STORE,
        )
    token, replaced_at = kept
    grace = rt.settings.reuse_grace
    return JSONResponse(
        {
            "refresh_token": token,
            "replaced_at": replaced_at,
            "reuse_grace": grace,
            # A replay sooner than this is answered as a racing tab's retry (same new token).
            "wait": max(0.0, replaced_at + grace - rt.clock()),
        },
        headers=NO_STORE,
    )


async def session_end(request: Request) -> Response:
    """``GET /auth/demo/session-end``: the state of the session in this browser's refresh cookie."""
    rt = runtime(request)
    if replay_stash(request) is None:
        return JSONResponse(NOT_DEMO, 404)
    token = cookies.refresh_cookie(request, rt.settings)
    state: dict[str, object] = {"state": "none"}
    try:
        session_id = rt.service.session_of(token) if token else None
    except InvalidGrant:
        session_id = None
    record = await rt.store.get_session(session_id) if session_id else None
    if record is not None:
        now = rt.clock()
        if record.revoked_at is not None:
            state = {"state": "revoked", "reason": record.revoked_reason or ""}
        elif record.expires_at <= now or record.idle_expires_at <= now:
            state = {"state": "expired"}
        else:
            state = {"state": "live"}
        state["session_id"] = record.id
    return JSONResponse(state, headers=NO_STORE)


async def index(request: Request) -> Response:
    page = STATIC / "index.html"
    if not page.exists():
        return JSONResponse({"error": "not_found", "error_description": "demo page not built"}, 404)
    return FileResponse(page, headers={"Cache-Control": "no-cache"})


async def favicon(request: Request) -> Response:
    """Browsers ask for ``/favicon.ico`` on pages without an icon link (JSON answers)."""
    return FileResponse(STATIC / "favicon.svg", media_type="image/svg+xml", headers={"Cache-Control": "max-age=86400"})


routes = [
    Route("/api/me", me, methods=["GET"]),
    Route("/api/echo", echo, methods=["POST"]),
    Route("/api/payments", payments, methods=["POST", "GET"]),
    Route("/auth/demo", demo_info, methods=["GET"]),
    Route("/auth/demo/old-refresh-token", old_refresh_token, methods=["GET"]),
    Route("/auth/demo/session-end", session_end, methods=["GET"]),
    Route("/", index, methods=["GET"]),
    Route("/favicon.ico", favicon, methods=["GET"]),
    Mount("/static", StaticFiles(directory=STATIC, check_dir=False), name="static"),
]
