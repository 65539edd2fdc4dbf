"""What third-party verifiers fetch: the JWK Set and the revocation feed.

``JWKSKeySource`` and ``RevocationFollower`` (:mod:`silentauth.resource`) read
these two routes; they are public by design (RFC 7517 keys are public, and the
feed lists only sessions that are already dead).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from silentauth.errors import InvalidRequest
from silentauth.server.auth_routes import runtime


async def jwks(request: Request) -> Response:
    """``GET /.well-known/jwks.json``: the public keys that verify access tokens."""
    rt = runtime(request)
    return JSONResponse(
        rt.ring.jwks(rt.clock()), headers={"Cache-Control": "public, max-age=60"}
    )


async def revocations(request: Request) -> Response:
    """The revocation feed for third-party verifiers (``RevocationFollower``).

    Lists only sessions that are already dead, so it reveals nothing usable;
    ``since=0`` returns every revocation the store still retains.
    """
    rt = runtime(request)
    since = request.query_params.get("since", "0")
    if not since.isdigit() or len(since) > 18:
        raise InvalidRequest("'since' must be a non-negative integer.")
    revoked, cursor = await rt.store.revocations_since(int(since))
    return JSONResponse({"revoked": revoked, "cursor": cursor}, headers={"Cache-Control": "no-store"})


routes = [
    Route("/.well-known/jwks.json", jwks, methods=["GET"]),
    Route("/auth/revocations", revocations, methods=["GET"]),
]
