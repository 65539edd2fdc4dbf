"""A second HTTP server on its own loopback port that records what it is sent.

It plays a host that is not the token issuer (an attacker's, or another API):
tests check which requests reached it with an ``Authorization`` header, and
make it answer with a renewal, a 401 challenge or a redirect.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from tests.conftest import run_live


@dataclass
class Recorder:
    """A live recording server: ``url`` and each request's ``(path, Authorization)``."""

    url: str = ""
    seen: list[tuple[str, str | None]] = field(default_factory=list)

    @property
    def authorizations(self) -> list[str | None]:
        return [auth for _, auth in self.seen]


def _app(recorder: Recorder) -> Starlette:
    def record(request: Request) -> dict[str, str]:
        recorder.seen.append((request.url.path, request.headers.get("authorization")))
        push = request.query_params.get("push")
        return {"New-Access-Token": push} if push else {}

    async def echo(request: Request) -> Response:
        return JSONResponse({"ok": True}, headers=record(request))

    async def reject(request: Request) -> Response:
        challenge = request.query_params.get("error", "invalid_token")
        headers = {**record(request), "WWW-Authenticate": f'Bearer error="{challenge}", max_age=1'}
        return JSONResponse({"error": challenge}, status_code=401, headers=headers)

    async def redirect(request: Request) -> Response:
        record(request)
        return RedirectResponse(request.query_params["to"], status_code=307)

    routes = [Route(p, f, methods=["GET", "POST"]) for p, f in (("/echo", echo), ("/reject", reject), ("/redirect", redirect))]
    return Starlette(routes=routes)


@contextmanager
def recording_server() -> Iterator[Recorder]:
    """Run a :class:`Recorder` on a free loopback port for the ``with`` block."""
    recorder = Recorder()
    gen = run_live(_app(recorder))
    recorder.url = next(gen).url
    try:
        yield recorder
    finally:
        for _ in gen:
            pass
