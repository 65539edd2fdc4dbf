"""Errors on the wire: every error's exact bytes, and unexpected failures.

Errors are rendered by one function (:func:`silentauth.errors.render_error`)
whether they come from the token endpoint's bare ASGI path, a Starlette route,
the resource kit's middleware or FastAPI handler, or Starlette's
``AuthenticationMiddleware``. These tests pin the bytes each path sends, so a
refactoring that changes a challenge, a header or a body fails here. Header
*order* is not pinned: fields with different names carry no order (RFC 9110
§5.3), and the paths used to differ in it. An unexpected failure is a JSON
500, logged by type only, never a traceback.
"""

# No ``from __future__ import annotations``: FastAPI evaluates the route's
# Annotated dependency at runtime.

import logging
from collections.abc import Iterable
from typing import Annotated, Any
from urllib.parse import urlencode

import httpx
import pytest
from fastapi import Depends, FastAPI
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message

from silentauth.resource import (
    BearerAuthMiddleware,
    Principal,
    SilentAuthBackend,
    TokenAuthenticator,
)
from silentauth.resource.fastapi import add_bearer_error_handler, require_scope
from silentauth.server.app import create_app
from silentauth.server.headers import SECURITY_HEADERS
from tests.conftest import FAST_PASSWORDS, Service, make_settings, run_live

pytestmark = pytest.mark.anyio

FORM = (b"content-type", b"application/x-www-form-urlencoded")
NO_STORE = [(b"cache-control", b"no-store"), (b"pragma", b"no-cache")]

Wire = tuple[int, list[tuple[bytes, bytes]], bytes]


async def call(
    app: ASGIApp,
    method: str,
    path: str,
    headers: Iterable[tuple[bytes, bytes]] = (),
    body: bytes = b"",
) -> Wire:
    """One request straight through the ASGI app: (status, sorted headers, body)."""
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
        "method": method, "scheme": "http", "path": path, "raw_path": path.encode(),
        "query_string": b"", "root_path": "", "headers": list(headers),
        "client": ("127.0.0.1", 50000), "server": ("testserver", 80),
    }
    sent = False
    messages: list[Message] = []

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Message) -> None:
        messages.append(message)

    await app(scope, receive, send)
    start = messages[0]
    payload = b"".join(m.get("body", b"") for m in messages[1:])
    headers = list(start["headers"])
    if isinstance(app, Starlette) and hasattr(app.state, "runtime"):
        # The token service adds its security headers to every answer, errors included
        # (tests/server/test_security_headers.py pins them); the bytes pinned here are
        # the error's own.
        for field in SECURITY_HEADERS:
            assert field in headers, (path, field)
            headers.remove(field)
    return start["status"], sorted(headers), payload


def wire(status: int, body: bytes, *extra: tuple[bytes, bytes]) -> Wire:
    headers = [
        (b"content-length", str(len(body)).encode()),
        (b"content-type", b"application/json"),
        *extra,
    ]
    return status, sorted(headers), body


async def test_token_endpoint_errors(service: Service) -> None:
    app = service.app
    form = urlencode({"grant_type": "foo"}).encode()
    assert await call(app, "POST", "/auth/token", [FORM], form) == wire(
        400,
        b'{"error":"unsupported_grant_type","error_description":"Supported grant types: password, refresh_token."}',
        *NO_STORE,
    )
    form = urlencode({"grant_type": "refresh_token", "refresh_token": "v1.x.1.y"}).encode()
    assert await call(app, "POST", "/auth/token", [FORM], form) == wire(
        400,
        b'{"error":"invalid_grant","error_description":"The refresh token is malformed."}',
        *NO_STORE,
    )
    assert await call(app, "GET", "/auth/token") == wire(
        405, b'{"error":"method_not_allowed","error_description":"Use POST."}', (b"allow", b"POST")
    )
    assert await call(app, "POST", "/auth/token", [FORM, (b"content-length", b"70000")]) == wire(
        413,
        b'{"error":"invalid_request","error_description":"The request body exceeds 65536 bytes."}',
        *NO_STORE,
    )
    assert await call(app, "POST", "/auth/token", [(b"content-type", b"text/plain")], b"a=b") == wire(
        400,
        b'{"error":"invalid_request","error_description":"Send the parameters as application/x-www-form-urlencoded."}',
        *NO_STORE,
    )


async def test_starlette_route_errors(service: Service) -> None:
    app = service.app
    assert await call(app, "POST", "/auth/revoke", [FORM, (b"content-length", b"70000")]) == wire(
        413,
        b'{"error":"invalid_request","error_description":"The request body exceeds 65536 bytes."}',
        *NO_STORE,
    )
    origin = [(b"origin", b"https://evil.example"), (b"host", b"testserver")]
    assert await call(app, "POST", "/auth/login", origin, b"{}") == wire(
        403,
        b'{"error":"access_denied","error_description":"Cross-origin request refused: the origin is neither this service\'s nor in CORS_ORIGINS."}',
        *NO_STORE,
    )
    assert await call(app, "GET", "/nope") == wire(
        404, b'{"error":"not_found","error_description":"Not Found"}'
    )


async def test_resource_errors_inside_the_token_service(service: Service) -> None:
    app = service.app
    assert await call(app, "GET", "/auth/sessions") == wire(
        401,
        b'{"error":"unauthorized","error_description":"An access token is required."}',
        (b"www-authenticate", b"Bearer"),
        (b"cache-control", b"no-store"),
    )
    bad = [(b"authorization", b"Bearer not.a.jwt")]
    status, headers, body = await call(app, "GET", "/auth/sessions", bad)
    assert status == 401
    assert body == b'{"error":"invalid_token","error_description":"The access token is malformed."}'
    assert headers == sorted(
        [
            (b"content-length", str(len(body)).encode()),
            (b"content-type", b"application/json"),
            (b"www-authenticate", b'Bearer error="invalid_token", error_description="The access token is malformed."'),
            (b"cache-control", b"no-store"),
        ]
    )
    token = (await service.password_grant())["access_token"]
    service.clock.advance(service.runtime.settings.step_up_max_age + 1)
    auth = [(b"authorization", f"Bearer {token}".encode())]
    status, headers, body = await call(app, "POST", "/api/payments", auth)
    max_age = service.runtime.settings.step_up_max_age
    description = f"This resource needs a login within the last {max_age} s."
    assert (status, body) == (
        401,
        (
            '{"error":"insufficient_user_authentication","error_description":"'
            + description + f'","max_age":{max_age}}}'
        ).encode(),
    )
    challenge = f'Bearer error="insufficient_user_authentication", error_description="{description}", max_age={max_age}'
    assert (b"www-authenticate", challenge.encode()) in headers


async def test_one_error_has_the_same_bytes_on_the_bare_path_and_on_a_route(service: Service) -> None:
    # The same parse error (a repeated parameter, RFC 6749 §3.2) from the token
    # endpoint's bare ASGI path and from a Starlette route: one renderer, one
    # wire form (the bare path used to escape non-ASCII text as \uXXXX).
    form = "é=1&é=2".encode()
    token = await call(service.app, "POST", "/auth/token", [FORM], form)
    route = await call(service.app, "POST", "/auth/revoke", [FORM], form)
    assert token == route == wire(
        400,
        "{\"error\":\"invalid_request\",\"error_description\":\"The parameter 'é' is repeated.\"}".encode(),
        *NO_STORE,
    )


def _authenticator(service: Service) -> TokenAuthenticator:
    return TokenAuthenticator.from_issuer(
        service.runtime.settings.issuer,
        client=service.client,
        jwks_url="http://testserver/.well-known/jwks.json",
        clock=service.clock,
    )


async def test_fastapi_and_backend_errors(service: Service) -> None:
    api = FastAPI()
    api.add_middleware(BearerAuthMiddleware, authenticator=_authenticator(service))
    add_bearer_error_handler(api)

    @api.post("/pay")
    async def pay(p: Annotated[Principal, Depends(require_scope("payments"))]) -> dict[str, Any]:
        return {"ok": True}

    token = (await service.password_grant())["access_token"]
    auth = [(b"authorization", f"Bearer {token}".encode())]
    assert await call(api, "POST", "/pay", auth) == wire(
        403,
        b"{\"error\":\"insufficient_scope\",\"error_description\":\"This resource needs the scope 'payments'.\"}",
        (b"www-authenticate", b'Bearer error="insufficient_scope", scope="payments"'),
        (b"cache-control", b"no-store"),
    )

    async def whoami(request: Request) -> Response:
        return JSONResponse({"user": request.user.display_name})

    backend = SilentAuthBackend(_authenticator(service))
    app = Starlette(
        routes=[Route("/whoami", whoami)],
        middleware=[Middleware(AuthenticationMiddleware, backend=backend, on_error=SilentAuthBackend.on_error)],
    )
    body = b'{"error":"invalid_token","error_description":"The access token is malformed."}'
    assert await call(app, "GET", "/whoami", [(b"authorization", b"Bearer " + b"x" * 20_000)]) == wire(
        401,
        body,
        (b"www-authenticate", b'Bearer error="invalid_token", error_description="The access token is malformed."'),
        (b"cache-control", b"no-store"),
    )


def test_unexpected_error_is_a_json_500_logged_without_message_or_traceback(
    tmp_path: object, caplog: pytest.LogCaptureFixture
) -> None:
    async def boom(request: Request) -> Response:
        raise RuntimeError("v1.leaked-refresh-token-in-an-exception-message")

    app = create_app(make_settings(tmp_path), passwords=FAST_PASSWORDS)  # type: ignore[arg-type]
    app.router.routes.append(Route("/boom", boom))
    caplog.set_level(logging.DEBUG)
    gen = run_live(app)
    live = next(gen)
    try:
        with httpx.Client(base_url=live.url) as client:
            r = client.get("/boom")
            assert r.status_code == 500
            assert r.json() == {"error": "server_error", "error_description": "An unexpected error occurred."}
            assert client.get("/healthz").status_code == 200  # same keep-alive connection survives
    finally:
        for _ in gen:
            pass
    assert "RuntimeError" in caplog.text
    assert "leaked-refresh-token" not in caplog.text
    assert "Traceback" not in caplog.text
