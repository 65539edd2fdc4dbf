"""The demo API (``/api/*``) and the demo page: protected by the resource kit."""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from silentauth.resource.middleware import require_auth
from silentauth.server.auth_routes import runtime
from silentauth.server.parsing import read_json

STATIC = Path(__file__).resolve().parent.parent / "web" / "static"


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


async def index(request: Request) -> Response:
    page = STATIC / "index.html"
    if not page.exists():
        return JSONResponse({"error": "not_found", "error_description": "demo page not built"}, 404)
    return FileResponse(page, headers={"Cache-Control": "no-cache"})


routes = [
    Route("/api/me", me, methods=["GET"]),
    Route("/api/echo", echo, methods=["POST"]),
    Route("/api/payments", payments, methods=["POST", "GET"]),
    Route("/", index, methods=["GET"]),
    Mount("/static", StaticFiles(directory=STATIC, check_dir=False), name="static"),
]
