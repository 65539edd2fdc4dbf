"""``POST /auth/token`` (RFC 6749) as a bare ASGI app: the refresh hot path.

Every native client's refresh lands here, so it skips what it does not need:
no router, no ``Request``/``Response`` objects, no middleware past the
outermost guard — a header scan, one bounded body read, the service call, and
one JSON write. :class:`TokenFastPath` hands it ``POST /auth/token`` before the
rest of the stack; the Starlette route points at the same object, so there is
one implementation either way.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from silentauth.errors import (
    MethodNotAllowed,
    OAuthError,
    StoreUnavailable,
    TemporarilyUnavailable,
    UnsupportedGrantType,
    render_error,
)
from silentauth.server.parsing import parse_form, receive_body, require
from silentauth.server.runtime import Runtime

log = logging.getLogger("silentauth.server")
WARN_EVERY = 10.0  # seconds between "store unavailable" warnings

_NO_STORE = [(b"cache-control", b"no-store"), (b"pragma", b"no-cache")]
_JSON = (b"content-type", b"application/json")


async def send_json(send: Send, status: int, payload: Any, headers: list[tuple[bytes, bytes]]) -> None:
    """A successful JSON answer, written as two ASGI messages."""
    body = json.dumps(payload, separators=(",", ":")).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [_JSON, (b"content-length", str(len(body)).encode()), *headers],
        }
    )
    await send({"type": "http.response.body", "body": body})


class TokenEndpoint:
    """The token endpoint: password and refresh_token grants."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._last_warning = -WARN_EVERY

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            payload = await self._grant(scope, receive)
            await send_json(send, 200, payload, _NO_STORE)
        except OAuthError as exc:
            await self._error(send, exc)
        except StoreUnavailable as exc:
            now = time.monotonic()
            if now - self._last_warning >= WARN_EVERY:  # one line per outage, not per request
                self._last_warning = now
                log.warning("store unavailable: %s", exc)
            await self._error(send, TemporarilyUnavailable(retry_after=2))

    @staticmethod
    async def _error(send: Send, exc: OAuthError) -> None:
        status, headers, body = render_error(exc)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _grant(self, scope: Scope, receive: Receive) -> dict[str, Any]:
        if scope["method"] != "POST":
            raise MethodNotAllowed()
        content_type = length = user_agent = None
        # Codec names ignore case, and a missing type is refused whatever it
        # defaults to: those mutants are equivalent (hence no mutate).
        for name, value in scope["headers"]:
            if name == b"content-type":
                content_type = value.decode("latin-1")  # pragma: no mutate
            elif name == b"content-length":
                length = value.decode("latin-1")  # pragma: no mutate
            elif name == b"user-agent":
                user_agent = value.decode("latin-1")  # pragma: no mutate
        form_type = content_type or ""  # pragma: no mutate
        form = parse_form(form_type, await receive_body(receive, length))
        client = scope.get("client")
        ip = client[0] if client else ""
        service = self._runtime.service
        grant_type = require(form, "grant_type")
        if grant_type == "refresh_token":
            grant = await service.refresh(require(form, "refresh_token"), scope=form.get("scope"), ip=ip)
        elif grant_type == "password":
            grant = await service.login(
                require(form, "username"),
                require(form, "password"),
                scope=form.get("scope"),
                client_id=form.get("client_id") or "native",
                user_agent=user_agent or "",
                ip=ip,
            )
        else:
            raise UnsupportedGrantType()
        return {
            "access_token": grant.access_token,
            "token_type": "Bearer",
            "expires_in": grant.expires_in,
            "refresh_token": grant.refresh_token,
            "scope": grant.scope,
        }


class TokenFastPath:
    """Send ``POST /auth/token`` straight to :class:`TokenEndpoint`; all else on."""

    def __init__(self, app: ASGIApp, endpoint: TokenEndpoint) -> None:
        self.app = app
        self.endpoint = endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/auth/token" and scope["method"] == "POST":
            await self.endpoint(scope, receive, send)
        else:
            await self.app(scope, receive, send)
