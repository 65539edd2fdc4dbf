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
from fastapi import APIRouter, Depends, FastAPI
from pydantic import BaseModel
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
    BearerRoute,
    CurrentPrincipal,
    add_bearer_error_handler,
    require_auth,
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


def _route_app(service: Service, middleware: bool = True) -> FastAPI:
    """The same routes as :func:`_fastapi_app`, protected by ``BearerRoute`` (no ``Depends``)."""
    auth = _remote(service)
    app = FastAPI()
    if middleware:
        app.add_middleware(BearerAuthMiddleware, authenticator=auth)
    add_bearer_error_handler(app)
    api = APIRouter(route_class=BearerRoute)
    paying = APIRouter(route_class=BearerRoute.requiring("api", "payments"))
    recent = APIRouter(
        route_class=BearerRoute.requiring(max_age=60, clock=service.clock)
    )

    @api.get("/me")
    async def me(request: Request) -> dict[str, Any]:
        p = require_auth(request)
        return {"sub": p.subject, "scopes": sorted(p.scopes)}

    @api.post("/sensitive")
    async def sensitive(request: Request) -> dict[str, Any]:
        p = require_auth(request, max_age=60, now=service.clock())
        return {"auth_time": p.auth_time}

    @recent.post("/recent")
    async def recent_login(request: Request) -> dict[str, Any]:
        return {"auth_time": require_auth(request).auth_time}

    @paying.post("/pay")
    async def pay() -> dict[str, Any]:
        return {"ok": True}

    @app.get("/public")
    async def public() -> dict[str, Any]:
        return {"ok": True}

    for router in (api, paying, recent):
        app.include_router(router)
    return app


FORMS = {"depends": _fastapi_app, "route": _route_app}
STEP_UP_PATHS = {"depends": ("/sensitive",), "route": ("/sensitive", "/recent")}


@pytest.mark.anyio
@pytest.mark.parametrize("form", sorted(FORMS))
async def test_require_recent_login_challenges_with_max_age_after_the_clock_moves(
    service: Service, form: str
) -> None:
    app = FORMS[form](service)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://app"
    ) as c:
        token = (await service.password_grant())["access_token"]
        for path in STEP_UP_PATHS[form]:
            assert (await c.post(path, headers=bearer(token))).status_code == 200
        service.clock.advance(61)
        for path in STEP_UP_PATHS[form]:
            r = await c.post(path, headers=bearer(token))
            assert r.status_code == 401, path
            assert r.headers["www-authenticate"].startswith(
                'Bearer error="insufficient_user_authentication"'
            )
            assert r.headers["www-authenticate"].endswith("max_age=60")
            assert (await c.get("/me", headers=bearer(token))).status_code == 200
            fresh = (await service.password_grant())["access_token"]
            assert (await c.post(path, headers=bearer(fresh))).status_code == 200


@pytest.mark.anyio
@pytest.mark.parametrize("form", sorted(FORMS))
async def test_require_scope_needs_every_scope_listed(
    service: Service, form: str
) -> None:
    app = FORMS[form](service)
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
@pytest.mark.parametrize("form", sorted(FORMS))
async def test_dependencies_without_middleware_fail_loudly_instead_of_letting_anyone_in(
    service: Service, form: str
) -> None:
    app = FORMS[form](service, middleware=False)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://app"
    ) as c:
        token = (await service.password_grant())["access_token"]
        with pytest.raises(RuntimeError, match="not installed"):
            await c.get("/me", headers=bearer(token))


@pytest.mark.anyio
@pytest.mark.parametrize("form", sorted(FORMS))
async def test_openapi_advertises_the_bearer_scheme_on_protected_routes(
    service: Service, form: str
) -> None:
    schema = FORMS[form](service).openapi()
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    for path, method in (("/me", "get"), ("/sensitive", "post"), ("/pay", "post")):
        operation = schema["paths"][path][method]
        assert operation["security"] == [{"HTTPBearer": []}]
        assert not operation.get("parameters"), (
            "the dependency must not leak query params"
        )


@pytest.mark.anyio
async def test_openapi_of_bearer_routes_names_the_scheme_once_and_leaves_public_routes_open(
    service: Service,
) -> None:
    app = _route_app(service)
    both = APIRouter(route_class=BearerRoute)

    @both.get("/both")
    async def with_dependency_too(p: CurrentPrincipal) -> dict[str, Any]:
        return {}

    app.include_router(both)
    schema = app.openapi()
    assert schema["paths"]["/both"]["get"]["security"] == [{"HTTPBearer": []}]
    assert schema["paths"]["/recent"]["post"]["security"] == [{"HTTPBearer": []}]
    assert "security" not in schema["paths"]["/public"]["get"]
    assert (
        app.openapi() is schema
    )  # FastAPI's cache still serves the completed document


class Order(BaseModel):
    amount: int


@pytest.mark.anyio
async def test_bearer_route_refuses_before_reading_the_body_or_solving_dependencies(
    service: Service,
) -> None:
    app = _route_app(service)
    api = APIRouter(route_class=BearerRoute)
    opened: list[str] = []

    async def database() -> str:
        opened.append("db")
        return "db"

    @api.post("/orders")
    async def order(
        body: Order, db: Annotated[str, Depends(database)]
    ) -> dict[str, Any]:
        return {"amount": body.amount}

    app.include_router(api)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://app"
    ) as c:
        r = await c.post(
            "/orders",
            content=b"{not json",
            headers={"Content-Type": "application/json"},
        )
        assert (r.status_code, r.headers["www-authenticate"]) == (401, "Bearer")
        r = await c.post(
            "/orders", json={"amount": 5}, headers=bearer("forged.token.x")
        )
        assert r.status_code == 401
        assert r.json()["error"] == "invalid_token"
        assert opened == []
        token = (await service.password_grant())["access_token"]
        r = await c.post("/orders", json={"amount": "five"}, headers=bearer(token))
        assert r.status_code == 422  # past the token check, FastAPI validates as usual
        r = await c.post("/orders", json={"amount": 5}, headers=bearer(token))
        assert (r.status_code, r.json()) == (200, {"amount": 5})
        assert opened == ["db", "db"]
        assert (await c.get("/public")).status_code == 200


@pytest.mark.anyio
async def test_app_router_route_class_protects_the_routes_declared_after_it(
    service: Service,
) -> None:
    app = FastAPI()
    app.add_middleware(BearerAuthMiddleware, authenticator=_remote(service))
    add_bearer_error_handler(app)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"ok": True}

    app.router.route_class = BearerRoute

    @app.get("/me")
    async def me(request: Request) -> dict[str, Any]:
        return {"sub": require_auth(request).subject}

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://app"
    ) as c:
        assert (await c.get("/health")).status_code == 200
        assert (await c.get("/me")).status_code == 401
        r = await c.get("/me", headers={"Authorization": "Bearer"})
        assert (r.status_code, r.json()["error"]) == (400, "invalid_request")
        token = (await service.password_grant())["access_token"]
        assert (await c.get("/me", headers=bearer(token))).status_code == 200
    assert "security" not in app.openapi()["paths"]["/health"]["get"]


def test_openapi_of_an_app_without_protected_routes_defines_no_scheme() -> None:
    app = FastAPI()
    add_bearer_error_handler(app)
    add_bearer_error_handler(app)  # twice: still one wrapper, still a valid document

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"ok": True}

    schema = app.openapi()
    assert "securitySchemes" not in schema.get("components", {})
    assert "security" not in schema["paths"]["/health"]["get"]
