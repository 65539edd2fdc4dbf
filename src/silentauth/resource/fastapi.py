"""FastAPI protection for routes that need silentauth access tokens.

This is the only module that imports FastAPI; the rest of the kit needs
Starlette alone. Install :class:`BearerAuthMiddleware` (it verifies the token
once per request), register the error handler once, and put the protected
routes on a router whose route class demands a token::

    add_bearer_error_handler(app)
    api = APIRouter(route_class=BearerRoute)

    @api.post("/transfer")
    async def transfer(request: Request):
        p = require_auth(request, scope="payments")
    app.include_router(api)

:class:`BearerRoute` checks the middleware's verdict before FastAPI solves a
single dependency: FastAPI's dependency injection costs ~10 µs per
``Depends`` per request, more than the token check itself. The dependencies
(``CurrentPrincipal``, :func:`require_scope`, ...) remain for routes where that
does not matter. Both forms list the bearer scheme in the OpenAPI document.

Refusals are :class:`~silentauth.errors.BearerError` subclasses; the handler
renders them per RFC 6750 / RFC 9470 with ``WWW-Authenticate``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar

from fastapi import Depends, FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.openapi.models import HTTPBearer as HTTPBearerModel
from fastapi.routing import APIRoute
from fastapi.security.base import SecurityBase
from starlette.responses import Response

from silentauth.clock import Clock, system_clock
from silentauth.errors import BearerError
from silentauth.resource.middleware import current, require_auth
from silentauth.resource.responses import error_response
from silentauth.resource.verify import Principal

Dependency = Callable[..., Awaitable[Principal]]
Handler = Callable[[Request], Coroutine[Any, Any, Response]]

__all__ = [
    "BearerRoute",
    "CurrentPrincipal",
    "add_bearer_error_handler",
    "bearer_error_handler",
    "current_principal",
    "require_auth",
    "require_claim",
    "require_recent_login",
    "require_scope",
]

SCHEME_NAME = "HTTPBearer"  # the name FastAPI's own HTTPBearer() registers
_BEARER_MODEL = HTTPBearerModel(description="silentauth access token (RFC 9068 JWT)")


class PrincipalDependency(SecurityBase):
    """A dependency that is its own OpenAPI bearer scheme (Swagger's "Authorize").

    The middleware has already verified the token; this only reads its
    verdict and applies ``check``. Being a :class:`SecurityBase` itself, it
    is one dependency for FastAPI to solve per request, not a dependency with
    an ``HTTPBearer`` sub-dependency re-parsing the header: the nesting cost
    ~6 µs a request (a sixth of a small FastAPI route's own time).
    """

    def __init__(self, check: Callable[[Principal], Principal] | None = None) -> None:
        self.model = _BEARER_MODEL
        self.scheme_name = SCHEME_NAME
        self.check = check

    async def __call__(self, request: Request) -> Principal:
        principal = current(request)
        return principal if self.check is None else self.check(principal)


current_principal = PrincipalDependency()
"""``Depends(current_principal)``: the caller, or 401."""

CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
"""Type a parameter ``p: CurrentPrincipal`` instead of ``Depends(current_principal)``."""


def require_scope(*scopes: str) -> Dependency:
    """``Depends(require_scope("payments"))``: 401 without a token, 403 without the scopes."""
    return PrincipalDependency(lambda p: p.require(*scopes))


def require_claim(name: str, *values: Any) -> Dependency:
    """``Depends(require_claim("roles", "admin"))``: 401 without a token, 403 without the claim.

    The claims come from the token service's claims hook, re-read at every
    refresh, so a role removed from a user stops opening the route at the
    next refresh. See :meth:`Principal.require_claim` for the matching rule.
    """
    return PrincipalDependency(lambda p: p.require_claim(name, *values))


def require_recent_login(max_age: int, clock: Clock = system_clock) -> Dependency:
    """``Depends(require_recent_login(300))``: RFC 9470 step-up when the login is older."""
    return PrincipalDependency(lambda p: p.require(max_age=max_age, now=clock()))


@dataclass(frozen=True)
class _Demand:
    scopes: tuple[str, ...]
    max_age: int | None
    clock: Clock

    def check(self, principal: Principal) -> None:
        principal.require(*self.scopes, max_age=self.max_age, now=self.clock())


class BearerRoute(APIRoute):
    """A route class that answers 401 unless the request carries a valid access token.

    ``APIRouter(route_class=BearerRoute)`` protects every route of the router
    (``app.router.route_class = BearerRoute`` every route the app declares
    afterwards): the check runs before FastAPI reads the body or solves any
    dependency, and costs no ``Depends``. The endpoint reads the caller with
    ``require_auth(request)``, which also demands a scope or a recent login
    (``require_auth(request, scope="payments", max_age=300)``).
    :meth:`requiring` makes a route class whose routes all demand more.
    Each operation lists the bearer scheme in the OpenAPI document
    (:func:`add_bearer_error_handler` adds the scheme's definition).
    HTTP routes only: a router's WebSocket routes are not ``APIRoute``s (see
    :mod:`silentauth.resource.websocket` for in-band authentication).
    """

    demand: ClassVar[_Demand | None] = None

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        # FastAPI merges openapi_extra into the operation: an OpenAPI 3 operation-level
        # security requirement (a caller's own "security" is kept as given).
        extra = dict(kwargs.get("openapi_extra") or {})
        extra.setdefault("security", [{SCHEME_NAME: []}])
        kwargs["openapi_extra"] = extra
        super().__init__(path, endpoint, **kwargs)

    @classmethod
    def requiring(
        cls, *scopes: str, max_age: int | None = None, clock: Clock = system_clock
    ) -> type[BearerRoute]:
        """A route class whose routes also demand ``scopes`` (403) and a login within ``max_age`` s (RFC 9470)."""
        demand = _Demand(scopes, max_age, clock)
        return type(f"{cls.__name__}Requiring", (cls,), {"demand": demand})

    def get_route_handler(self) -> Handler:
        """FastAPI's handler for this route, behind the token check."""
        handler = super().get_route_handler()
        demand = self.demand
        if demand is None:

            async def guarded(request: Request) -> Response:
                current(request)  # raises the BearerError the request earned
                return await handler(request)

        else:

            async def guarded(request: Request) -> Response:
                demand.check(current(request))
                return await handler(request)

        return guarded


async def bearer_error_handler(request: Request, exc: Exception) -> Response:
    """Exception handler rendering a :class:`BearerError` per RFC 6750."""
    if not isinstance(exc, BearerError):
        raise exc
    return error_response(exc)


def add_bearer_error_handler(app: FastAPI) -> None:
    """Register :func:`bearer_error_handler` for every :class:`BearerError`.

    It also completes ``app.openapi()`` for :class:`BearerRoute` operations:
    FastAPI defines a security scheme only for dependencies that are one, so
    the definition their ``security`` requirement names is added here.
    """
    app.add_exception_handler(BearerError, bearer_error_handler)
    build = app.openapi
    if getattr(build, "documents_bearer_scheme", False):
        return  # registered twice: the wrapper is already in place

    def openapi() -> dict[str, Any]:
        schema = build()
        if _tidy_security(schema):
            schemes = schema.setdefault("components", {}).setdefault(
                "securitySchemes", {}
            )
            schemes.setdefault(
                SCHEME_NAME,
                jsonable_encoder(_BEARER_MODEL, by_alias=True, exclude_none=True),
            )
        return schema

    openapi.documents_bearer_scheme = True  # type: ignore[attr-defined]
    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to extend it


def _tidy_security(schema: dict[str, Any]) -> bool:
    """Drop repeated requirements (a BearerRoute with a bearer ``Depends`` lists it twice);
    whether any operation names the bearer scheme."""
    named = False
    for item in schema.get("paths", {}).values():
        for operation in item.values() if isinstance(item, dict) else ():
            if not isinstance(operation, dict) or "security" not in operation:
                continue
            unique: list[Any] = []
            for requirement in operation["security"]:
                if requirement not in unique:
                    unique.append(requirement)
            operation["security"] = unique
            named = named or any(SCHEME_NAME in r for r in unique)
    return named
