"""``POST /auth/token`` (RFC 6749) as a bare ASGI app: the refresh hot path.

Every native client's refresh lands here, so it skips what it does not need:
no router, no ``Request``/``Response`` objects, no middleware past the
outermost guard — a header scan, one bounded body read, the service call, and
one JSON write. :class:`TokenFastPath` hands it ``POST /auth/token`` before the
rest of the stack; the Starlette route points at the same object. Under
``silentauth serve`` most token requests do not reach ASGI at all: the HTTP
protocol (:mod:`silentauth.server.token_protocol`) calls
:meth:`TokenEndpoint.answer` itself. One implementation every way.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import NamedTuple

from starlette.types import ASGIApp, Receive, Scope, Send

from silentauth.core.encoding import json_string
from silentauth.core.idempotency import parse_key
from silentauth.core.sessions import Grant
from silentauth.errors import (
    InvalidClient,
    InvalidGrant,
    MethodNotAllowed,
    OAuthError,
    Rendered,
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


_MUST_AUTHENTICATE = "This refresh token was issued to a confidential client: authenticate as it."


class RequestFields(NamedTuple):
    """The request header fields the token endpoint reads (each ``None`` when absent)."""

    content_type: str | None
    length: str | None
    user_agent: str | None
    authorization: str | None
    idempotency_key: str | None

    @classmethod
    def of(cls, headers: Iterable[tuple[bytes, bytes]]) -> RequestFields:
        """Pick the fields out of ASGI header pairs (names lower-case, as servers give them)."""
        content_type = length = user_agent = authorization = idempotency = None
        # Codec names ignore case: those mutants are equivalent (hence no mutate).
        for name, value in headers:
            if name == b"content-type":
                content_type = value.decode("latin-1")  # pragma: no mutate
            elif name == b"content-length":
                length = value.decode("latin-1")  # pragma: no mutate
            elif name == b"user-agent":
                user_agent = value.decode("latin-1")  # pragma: no mutate
            elif name == b"authorization":
                authorization = value.decode("latin-1")  # pragma: no mutate
            elif name == b"idempotency-key":
                idempotency = value.decode("latin-1")  # pragma: no mutate - codec names ignore case
        return cls(content_type, length, user_agent, authorization, idempotency)


class TokenEndpoint:
    """The token endpoint: password and refresh_token grants."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        # No mutants: monotonic time is far past 2 x WARN_EVERY by the time anything is served.
        self._last_warning = -WARN_EVERY  # pragma: no mutate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            if scope["method"] != "POST":
                raise MethodNotAllowed()
            fields = RequestFields.of(scope["headers"])
            body = await receive_body(receive, fields.length)
        except OAuthError as exc:
            status, headers, content = render_error(exc)
        else:
            client = scope.get("client")
            status, headers, content = await self.answer(fields, body, client[0] if client else "")
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": content})

    async def answer(self, fields: RequestFields, body: bytes, ip: str) -> Rendered:
        """The whole answer to a request of ``fields`` and ``body`` from ``ip``: never raises an OAuth error.

        The ASGI path above and the HTTP protocol of
        :mod:`silentauth.server.token_protocol` both answer through here, so
        there is one grant implementation whichever way a request came in.
        """
        try:
            grant = await self._grant(fields, body, ip)
        except OAuthError as exc:
            return render_error(exc)
        except StoreUnavailable as exc:
            now = time.monotonic()
            # One line per outage, not per request; monotonic floats never sit exactly on the edge.
            if now - self._last_warning >= WARN_EVERY:  # pragma: no mutate
                self._last_warning = now
                log.warning("store unavailable: %s", exc)
            return render_error(TemporarilyUnavailable(retry_after=2))
        content = token_answer(grant)
        return Rendered(200, [_JSON, (b"content-length", str(len(content)).encode()), *_NO_STORE], content)

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

    async def _grant(self, fields: RequestFields, body: bytes, ip: str) -> Grant:
        # A missing type is refused whatever it defaults to: that mutant is equivalent.
        form = parse_form(fields.content_type or "", body)  # pragma: no mutate
        user_agent, authorization = fields.user_agent, fields.authorization
        service = self._runtime.service
        grant_type = require(form, "grant_type")
        creds, clients = client_credentials(authorization, form), self._runtime.clients
        if grant_type == "refresh_token":
            # Parsed first: a malformed key is a 400 before anything rotates.
            key = parse_key(fields.idempotency_key)
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
        return grant


def token_answer(grant: Grant) -> bytes:
    """The JSON body of a successful token answer (RFC 6749 §5.1).

    Written by a template, members in a fixed order, each string through
    :func:`~silentauth.core.encoding.json_string`: the same bytes
    :func:`~silentauth.core.encoding.dumps` gives for the dict of these members
    (a test compares the two), at half its cost, as no dict is built and walked.
    """
    text = (
        f'{{"access_token":{json_string(grant.access_token)},"token_type":"Bearer",'
        f'"expires_in":{grant.expires_in:d},"scope":{json_string(grant.scope)}'
    )
    if grant.refresh_token:  # a lifetime hook may give a client no refresh (RFC 6749 §5.1)
        text += f',"refresh_token":{json_string(grant.refresh_token)}'
    if grant.device_token:
        # A native client keeps this and sends it with its next password grant.
        text += f',"device_token":{json_string(grant.device_token)}'
    return (text + "}").encode("ascii")  # pragma: no mutate - codec names ignore case


def route_path(scope: Scope) -> str:
    """The path below the mount point (``root_path``), as Starlette's router matches it."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")  # pragma: no mutate - None or any default that prefixes no path leaves the path as it is
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
