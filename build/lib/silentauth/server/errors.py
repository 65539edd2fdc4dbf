"""The token service's exception handlers: every error as JSON, never a stack trace.

Errors are rendered by :func:`silentauth.errors.render_error` (through
:func:`~silentauth.resource.responses.error_response`); bad input never
becomes a 5xx.
"""

from __future__ import annotations

import logging

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from silentauth.errors import (
    OAuthError,
    StoreUnavailable,
    TemporarilyUnavailable,
    render_json,
)
from silentauth.resource.responses import error_response, rendered_response

log = logging.getLogger("silentauth.server")


async def on_oauth_error(request: Request, exc: Exception) -> Response:
    """Any :class:`OAuthError` raised by a route."""
    if not isinstance(exc, OAuthError):  # pragma: no cover - routed by type
        return await on_unexpected(request, exc)
    return error_response(exc)


async def on_store_unavailable(request: Request, exc: Exception) -> Response:
    """503 ``temporarily_unavailable`` with ``Retry-After`` while the store is down."""
    log.warning("store unavailable: %s", exc)
    return error_response(TemporarilyUnavailable(retry_after=2))


async def on_http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own 404/405 (no route, wrong method) in the same JSON shape."""
    if not isinstance(exc, HTTPException):  # pragma: no cover - routed by type
        return await on_unexpected(request, exc)
    names = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}
    payload = {"error": names.get(exc.status_code, "invalid_request"), "error_description": str(exc.detail)}
    return rendered_response(render_json(exc.status_code, payload, exc.headers or {}))


def _server_error() -> Response:
    payload = {"error": "server_error", "error_description": "An unexpected error occurred."}
    return rendered_response(render_json(500, payload, {}))


async def on_unexpected(request: Request, exc: Exception) -> Response:
    """A JSON 500 for an exception no other handler claims."""
    # Logged by type only: exception text may quote a token or a password.
    log.error("unexpected %s on %s %s", type(exc).__name__, request.method, request.url.path)
    return _server_error()


class CatchAllMiddleware:
    """The outermost guard: an unexpected error becomes a JSON 500, logged by type only.

    Starlette's own handler for ``Exception`` re-raises after answering, and
    the server then logs the traceback — whose text may quote a token. Here the
    exception ends, and the connection stays usable.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            log.error("unexpected %s on %s %s", type(exc).__name__, scope.get("method"), scope.get("path"))
            if not started:
                await _server_error()(scope, receive, send)


EXCEPTION_HANDLERS = {
    OAuthError: on_oauth_error,
    StoreUnavailable: on_store_unavailable,
    HTTPException: on_http_error,
}
