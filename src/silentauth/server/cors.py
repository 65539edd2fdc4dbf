"""CORS for the origins in ``CORS_ORIGINS``: pure ASGI middleware.

A page on a listed origin (``https://app.example.com`` calling the service on
``https://auth.example.com``) may call every route with credentials: the
preflight (an ``OPTIONS`` request with ``Access-Control-Request-Method``) is
answered here with 204 and cached by the browser for ``CORS_MAX_AGE``; actual
responses name the origin, allow credentials and expose the headers the
browser client reads (``New-Access-Token``, ``WWW-Authenticate``,
``Retry-After``). Any other origin gets no CORS header at all, so the browser
keeps the response from its page; its preflight gets a 403.

Credentialed CORS cannot use ``*`` (Fetch standard, "CORS protocol"): each
origin is echoed only after an exact match against the list, and every
response carries ``Vary: Origin`` so no cache serves one origin's answer to
another.

CORS only decides what a foreign page may *read*. Whether a request may act
on the session cookie is decided by the routes themselves (``Origin`` and
content-type checks in :mod:`silentauth.server.auth_routes`), because a
request the browser sends without a preflight reaches the server anyway.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

ALLOW_METHODS = "GET, POST, DELETE"
ALLOW_HEADERS = "Authorization, Content-Type, X-CSRF-Token, Idempotency-Key"
EXPOSE_HEADERS = "New-Access-Token, WWW-Authenticate, Retry-After"

_REFUSED = json.dumps(
    {"error": "access_denied", "error_description": "This origin is not allowed to call the service (CORS_ORIGINS)."}
).encode()


def _add_vary_origin(headers: MutableHeaders) -> None:
    vary = headers.get("vary")
    if vary is None:
        headers["Vary"] = "Origin"
    elif "origin" not in (v.strip().lower() for v in vary.split(",")):
        headers["Vary"] = f"{vary}, Origin"


class CORSMiddleware:
    """Answer preflights and label responses for the listed ``origins`` only."""

    def __init__(self, app: ASGIApp, origins: Iterable[str], max_age: int) -> None:
        self.app = app
        self.origins = frozenset(origins)
        self.max_age = max_age

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (not self.origins and scope["method"] != "OPTIONS"):
            # Nothing listed and no preflight: responses cannot depend on Origin, nothing
            # to add, and no header to look up (every token request passes here).
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        if scope["method"] == "OPTIONS" and origin is not None and "access-control-request-method" in headers:
            await self._preflight(origin, send)
            return
        if not self.origins:
            # Nothing listed: responses cannot depend on Origin, nothing to add.
            await self.app(scope, receive, send)
            return
        allowed = origin in self.origins

        async def labelled_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])  # optional in ASGI; MutableHeaders needs it
                out = MutableHeaders(scope=message)
                _add_vary_origin(out)
                if allowed and origin is not None:
                    out["Access-Control-Allow-Origin"] = origin
                    out["Access-Control-Allow-Credentials"] = "true"
                    out["Access-Control-Expose-Headers"] = EXPOSE_HEADERS
            await send(message)

        await self.app(scope, receive, labelled_send)

    async def _preflight(self, origin: str, send: Send) -> None:
        out = MutableHeaders()
        out["Vary"] = "Origin"
        if origin in self.origins:
            status, body = 204, b""
            out["Access-Control-Allow-Origin"] = origin
            out["Access-Control-Allow-Credentials"] = "true"
            out["Access-Control-Allow-Methods"] = ALLOW_METHODS
            out["Access-Control-Allow-Headers"] = ALLOW_HEADERS
            out["Access-Control-Max-Age"] = str(self.max_age)
        else:
            # No CORS header: the browser refuses the actual request; the body says why.
            status, body = 403, _REFUSED
            out["Content-Type"] = "application/json"
            out["Content-Length"] = str(len(body))
            out["Cache-Control"] = "no-store"
        await send({"type": "http.response.start", "status": status, "headers": out.raw})
        await send({"type": "http.response.body", "body": body})
