"""What operators scrape: Prometheus ``/metrics`` and the ``/healthz`` probe."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from silentauth.server.auth_routes import runtime


async def metrics(request: Request) -> Response:
    """``GET /metrics`` in the Prometheus text format (version 0.0.4)."""
    rt = runtime(request)
    rt.metrics.revocation_set.set(len(rt.revocations))
    return Response(rt.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")


async def healthz(request: Request) -> Response:
    """``GET /healthz``: the process answers (liveness, not the store's health)."""
    return JSONResponse({"status": "ok"})


routes = [
    Route("/metrics", metrics, methods=["GET"]),
    Route("/healthz", healthz, methods=["GET"]),
]
