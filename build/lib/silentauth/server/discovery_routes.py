"""``GET /.well-known/oauth-authorization-server``: authorization server metadata (RFC 8414).

Stock clients and verifiers (Authlib, ``oauth4webapi``, ``openid-client``,
``jose``'s remote JWK Set) find the endpoints, grants, keys and client
authentication methods here instead of being configured by hand. Every URL is
built from ``ISSUER``, the public base URL, so the document names the same
origin that the tokens' ``iss`` claim names (RFC 8414 §3.3 requires the
``issuer`` to match exactly).

There is no authorization endpoint (no browser redirect flows), hence no
``authorization_endpoint`` and an empty ``response_types_supported``; and no
ID token, hence no OpenID Connect discovery document.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from silentauth.core.keys import ALG
from silentauth.server.auth_routes import runtime
from silentauth.settings import Settings

SECRET_METHODS = ["client_secret_basic", "client_secret_post"]


def metadata(settings: Settings) -> dict[str, Any]:
    """The RFC 8414 §2 document for this service."""
    base = settings.issuer.rstrip("/")
    return {
        "issuer": settings.issuer,
        "token_endpoint": base + "/auth/token",
        "jwks_uri": base + "/.well-known/jwks.json",
        "revocation_endpoint": base + "/auth/revoke",
        "introspection_endpoint": base + "/auth/introspect",
        "grant_types_supported": ["password", "refresh_token"],
        "response_types_supported": [],
        "scopes_supported": settings.scope.split(),
        # "none": public clients (the built-in browser and native ones) send only client_id.
        "token_endpoint_auth_methods_supported": [*SECRET_METHODS, "none"],
        "revocation_endpoint_auth_methods_supported": [*SECRET_METHODS, "none"],
        "introspection_endpoint_auth_methods_supported": SECRET_METHODS,
        # Not an RFC 8414 field: the JWS algorithm of the RFC 9068 access tokens.
        "access_token_signing_alg_values_supported": [ALG],
        "service_documentation": base + "/openapi.json",
    }


async def authorization_server(request: Request) -> Response:
    """The metadata document; public and cacheable like the JWK Set."""
    return JSONResponse(
        metadata(runtime(request).settings), headers={"Cache-Control": "public, max-age=300"}
    )


routes = [
    Route("/.well-known/oauth-authorization-server", authorization_server, methods=["GET"]),
]
