"""The Starlette AuthenticationBackend adapter and the FastAPI dependencies.

Keys come from the in-process token service's JWKS (httpx over ASGI), so
these run without sockets; the live-server path is covered elsewhere.
"""

# No ``from __future__ import annotations`` here: FastAPI must evaluate the
# Annotated dependency aliases defined inside _fastapi_app at runtime.

from collections.abc import AsyncIterator
from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends, FastAPI
from starlette.applications import Starlette
from starlette.authentication import requires
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from silentauth.resource import (
    BearerAuthMiddleware,
    Principal,
    RemoteAuthenticator,
    SilentAuthBackend,
    TokenAuthenticator,
)
from silentauth.resource.fastapi import (
    CurrentPrincipal,
    add_bearer_error_handler,
    require_recent_login,
    require_scope,
)
from tests.conftest import Service
from tests.resource.conftest import bearer


def _remote(service: Service) -> RemoteAuthenticator:
    return TokenAuthenticator.from_issuer(
        service.runtime.settings.issuer,
        client=service.client,
        jwks_url="http://testserver/.well-known/jwks.json",
        clock=service.clock,
    )


@requires("authenticated")
async def whoami(request: Request) -> Response:
    return JSONResponse(
        {"name": request.user.display_name, "scopes": request.auth.scopes}
    )


@requires("payments")
async def pay(request: Request) -> Response:
    return JSONResponse({"ok": True})


@pytest.fixture
async def starlette_client(service: Service) -> AsyncIterator[httpx.AsyncClient]:
    backend = SilentAuthBackend(_remote(service))
    app = Starlette(
        routes=[Route("/whoami", whoami), Route("/pay", pay)],
        middleware=[
            Middleware(
                AuthenticationMiddleware,
                backend=backend,
                on_error=SilentAuthBackend.on_error,
            )
        ],
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
        yield client


@pytest.mark.anyio
async def test_backend_sets_request_user_and_scopes(
    service: Service, starlette_client: httpx.AsyncClient
) -> None:
    token = (await service.password_grant())["access_token"]
    r = await starlette_client.get("/whoami", headers=bearer(token))
    assert r.status_code == 200, r.text
    assert r.json() == {
        "name": "alice",
        "scopes": ["authenticated", "api", "profile"],
    }
    assert (
        await starlette_client.get("/pay", headers=bearer(token))
    ).status_code == 403


@pytest.mark.anyio
async def test_backend_leaves_anonymous_and_foreign_schemes_to_the_app(
    starlette_client: httpx.AsyncClient,
) -> None:
    assert (
        await starlette_client.get("/whoami")
    ).status_code == 403  # Starlette's @requires
    basic = {"Authorization": "Basic YWxpY2U6c2VjcmV0"}
    assert (await starlette_client.get("/whoami", headers=basic)).status_code == 403


@pytest.mark.anyio
async def test_backend_answers_a_bad_token_with_rfc6750_401(
    starlette_client: httpx.AsyncClient,
) -> None:
    r = await starlette_client.get("/whoami", headers=bearer("not.a.jwt"))
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith('Bearer error="invalid_token"')


def _fastapi_app(service: Service, middleware: bool = True) -> FastAPI:
    auth = _remote(service)
    app = FastAPI()
    if middleware:
        app.add_middleware(BearerAuthMiddleware, authenticator=auth)
    add_bearer_error_handler(app)
    Recent = Annotated[
        Principal, Depends(require_recent_login(60, clock=service.clock))
    ]
    Both = Annotated[Principal, Depends(require_scope("api", "payments"))]

    @app.get("/me")
    async def me(p: CurrentPrincipal) -> dict[str, Any]:
        return {"sub": p.subject, "scopes": sorted(p.scopes)}

    @app.post("/sensitive")
    async def sensitive(p: Recent) -> dict[str, Any]:
        return {"auth_time": p.auth_time}

    @app.post("/pay")
    async def pay(p: Both) -> dict[str, Any]:
        return {"ok": True}

    return app


@pytest.mark.anyio
async def test_require_recent_login_challenges_with_max_age_after_the_clock_moves(
    service: Service,
) -> None:
    app = _fastapi_app(service)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://app"
    ) as c:
        token = (await service.password_grant())["access_token"]
        assert (await c.post("/sensitive", headers=bearer(token))).status_code == 200
        service.clock.advance(61)
        r = await c.post("/sensitive", headers=bearer(token))
        assert r.status_code == 401
        assert r.headers["www-authenticate"].startswith(
            'Bearer error="insufficient_user_authentication"'
        )
        assert r.headers["www-authenticate"].endswith("max_age=60")
        assert (await c.get("/me", headers=bearer(token))).status_code == 200
        fresh = (await service.password_grant())["access_token"]
        assert (await c.post("/sensitive", headers=bearer(fresh))).status_code == 200


@pytest.mark.anyio
async def test_require_scope_needs_every_scope_listed(service: Service) -> None:
    app = _fastapi_app(service)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://app"
    ) as c:
        token = (await service.password_grant())["access_token"]
        r = await c.post("/pay", headers=bearer(token))
        assert r.status_code == 403
        assert (
            r.headers["www-authenticate"]
            == 'Bearer error="insufficient_scope", scope="payments"'
        )
        r = await c.get("/me")
        assert r.status_code == 401
        assert r.headers["www-authenticate"] == "Bearer"


@pytest.mark.anyio
async def test_dependencies_without_middleware_fail_loudly_instead_of_letting_anyone_in(
    service: Service,
) -> None:
    app = _fastapi_app(service, middleware=False)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://app"
    ) as c:
        token = (await service.password_grant())["access_token"]
        with pytest.raises(RuntimeError, match="not installed"):
            await c.get("/me", headers=bearer(token))


@pytest.mark.anyio
async def test_openapi_advertises_the_bearer_scheme_on_protected_routes(
    service: Service,
) -> None:
    schema = _fastapi_app(service).openapi()
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    for path, method in (("/me", "get"), ("/sensitive", "post"), ("/pay", "post")):
        operation = schema["paths"][path][method]
        assert operation["security"] == [{"HTTPBearer": []}]
        assert not operation.get("parameters"), (
            "the dependency must not leak query params"
        )
