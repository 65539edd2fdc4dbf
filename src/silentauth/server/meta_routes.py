"""Operator and verifier endpoints: JWKS, metrics, health."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from silentauth.server.auth_routes import runtime


async def jwks(request: Request) -> Response:
    rt = runtime(request)
    return JSONResponse(
        rt.ring.jwks(rt.clock()), headers={"Cache-Control": "public, max-age=60"}
    )


async def metrics(request: Request) -> Response:
    rt = runtime(request)
    rt.metrics.revocation_set.set(len(rt.revocations))
    return Response(rt.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


routes = [
    Route("/.well-known/jwks.json", jwks, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
    Route("/healthz", healthz, methods=["GET"]),
]
