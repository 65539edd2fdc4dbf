"""``POST /auth/token`` (RFC 6749) as a bare ASGI app: the refresh hot path.

Every native client's refresh lands here, so it skips what it does not need:
no router, no ``Request``/``Response`` objects, no middleware past the
outermost guard — a header scan, one bounded body read, the service call, and
one JSON write. :class:`TokenFastPath` hands it ``POST /auth/token`` before the
rest of the stack; the Starlette route points at the same object, so there is
one implementation either way.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from silentauth.core.encoding import dumps
from silentauth.core.idempotency import parse_key
from silentauth.errors import (
    InvalidClient,
    InvalidGrant,
    MethodNotAllowed,
    OAuthError,
    StoreUnavailable,
    TemporarilyUnavailable,
    UnsupportedGrantType,
    render_error,
)
from silentauth.server.client_auth import authenticate, client_credentials
from silentauth.server.parsing import parse_form, receive_body, remember_flag, require
from silentauth.server.runtime import Runtime

log = logging.getLogger("silentauth.server")
WARN_EVERY = 10.0  # seconds between "store unavailable" warnings

_NO_STORE = [(b"cache-control", b"no-store"), (b"pragma", b"no-cache")]
_JSON = (b"content-type", b"application/json")


async def send_json(send: Send, status: int, payload: Any, headers: list[tuple[bytes, bytes]]) -> None:
    """A successful JSON answer, written as two ASGI messages."""
    body = dumps(payload)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [_JSON, (b"content-length", str(len(body)).encode()), *headers],
        }
    )
    await send({"type": "http.response.body", "body": body})


_MUST_AUTHENTICATE = "This refresh token was issued to a confidential client: authenticate as it."


class TokenEndpoint:
    """The token endpoint: password and refresh_token grants."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        # No mutants: monotonic time is far past 2 x WARN_EVERY by the time anything is served.
        self._last_warning = -WARN_EVERY  # pragma: no mutate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            payload = await self._grant(scope, receive)
            await send_json(send, 200, payload, _NO_STORE)
        except OAuthError as exc:
            await self._error(send, exc)
        except StoreUnavailable as exc:
            now = time.monotonic()
            # One line per outage, not per request; monotonic floats never sit exactly on the edge.
            if now - self._last_warning >= WARN_EVERY:  # pragma: no mutate
                self._last_warning = now
                log.warning("store unavailable: %s", exc)
            await self._error(send, TemporarilyUnavailable(retry_after=2))

    @staticmethod
    async def _error(send: Send, exc: OAuthError) -> None:
        status, headers, body = render_error(exc)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _refuse_unauthenticated(self, refresh_token: str) -> None:
        """401 ``invalid_client`` for a confidential client's refresh token sent without its secret.

        Checked before anything rotates, and nothing is revoked (RFC 6749 §5.2,
        §6): a misconfigured client must not log its user out, and a thief
        without the secret gains nothing from the token alone.
        """
        service, clients = self._runtime.service, self._runtime.clients
        if not await clients.any_confidential():
            return
        try:
            session_id = service.session_of(refresh_token)
        except InvalidGrant:
            return  # service.refresh refuses it, with its failure accounting
        session = await service.store.get_session(session_id)
        if session is not None and await clients.is_confidential(session.client_id):
            raise InvalidClient(_MUST_AUTHENTICATE)

    async def _grant(self, scope: Scope, receive: Receive) -> dict[str, Any]:
        if scope["method"] != "POST":
            raise MethodNotAllowed()
        content_type = length = user_agent = authorization = idempotency = None
        # Codec names ignore case, and a missing type is refused whatever it
        # defaults to: those mutants are equivalent (hence no mutate).
        for name, value in scope["headers"]:
            if name == b"content-type":
                content_type = value.decode("latin-1")  # pragma: no mutate
            elif name == b"content-length":
                length = value.decode("latin-1")  # pragma: no mutate
            elif name == b"user-agent":
                user_agent = value.decode("latin-1")  # pragma: no mutate
            elif name == b"authorization":
                authorization = value.decode("latin-1")  # pragma: no mutate
            elif name == b"idempotency-key":
                idempotency = value.decode("latin-1")  # pragma: no mutate
        form_type = content_type or ""  # pragma: no mutate
        form = parse_form(form_type, await receive_body(receive, length))
        client = scope.get("client")
        ip = client[0] if client else ""
        service = self._runtime.service
        grant_type = require(form, "grant_type")
        creds, clients = client_credentials(authorization, form), self._runtime.clients
        if grant_type == "refresh_token":
            # Parsed first: a malformed key is a 400 before anything rotates.
            key = parse_key(idempotency)
            client = await authenticate(clients, creds)
            refresh_token = require(form, "refresh_token")
            if client is None:
                await self._refuse_unauthenticated(refresh_token)
            grant = await service.refresh(
                refresh_token,
                scope=form.get("scope"),
                ip=ip,
                client_id=client.client_id if client else None,
                resource=form.get("resource"),
                idempotency_key=key,
            )
            if client is None and await clients.is_confidential(grant.session.client_id):
                # Only when this instance learnt of the client after the check above
                # (another instance registered it moments ago): refuse, still revoke nothing.
                raise InvalidClient(_MUST_AUTHENTICATE)
        elif grant_type == "password":
            # The default client and the fallback name both say "native": either alone would do.
            client = await authenticate(clients, creds, default="native")  # pragma: no mutate
            grant = await service.login(
                require(form, "username"),
                require(form, "password"),
                scope=form.get("scope"),
                client_id=client.client_id if client else "native",  # pragma: no mutate
                resource=form.get("resource"),
                user_agent=user_agent or "",
                ip=ip,
                remember=remember_flag(form.get("remember")),
                device_token=form.get("device_token"),
            )
        else:
            raise UnsupportedGrantType()
        payload: dict[str, Any] = {
            "access_token": grant.access_token,
            "token_type": "Bearer",
            "expires_in": grant.expires_in,
            "scope": grant.scope,
        }
        if grant.refresh_token:  # a lifetime hook may give a client no refresh (RFC 6749 §5.1)
            payload["refresh_token"] = grant.refresh_token
        if grant.device_token:
            # A native client keeps this and sends it with its next password grant.
            payload["device_token"] = grant.device_token
        return payload


def route_path(scope: Scope) -> str:
    """The path below the mount point (``root_path``), as Starlette's router matches it."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")  # pragma: no mutate - absent, None or any other default fails the test below alike
    return path[len(root) :] if root and path.startswith(root + "/") else path


class TokenFastPath:
    """Send ``POST /auth/token`` straight to :class:`TokenEndpoint`; all else on."""

    def __init__(self, app: ASGIApp, endpoint: TokenEndpoint) -> None:
        self.app = app
        self.endpoint = endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The route path, not the raw path: mounted in another app (``app.mount("/sa", ...)``)
        # the request arrives as /sa/auth/token with root_path /sa.
        if scope["type"] == "http" and scope["method"] == "POST" and route_path(scope) == "/auth/token":
            await self.endpoint(scope, receive, send)
        else:
            await self.app(scope, receive, send)
