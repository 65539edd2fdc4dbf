"""What operators scrape: Prometheus ``/metrics``, the ``/healthz`` and ``/readyz`` probes."""

from __future__ import annotations

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from silentauth.errors import StoreError
from silentauth.server.auth_routes import runtime

# A probe must answer before the orchestrator's own probe timeout (often 1 s).
READY_TIMEOUT = 0.8


async def metrics(request: Request) -> Response:
    """``GET /metrics`` in the Prometheus text format (version 0.0.4)."""
    rt = runtime(request)
    rt.metrics.revocation_set.set(len(rt.revocations))
    return Response(rt.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")


async def healthz(request: Request) -> Response:
    """``GET /healthz``: the process answers (liveness, not the store's health)."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    """``GET /readyz``: 200 when this instance can serve tokens, else 503.

    Liveness (``/healthz``) must not depend on the store, or an outage would
    make the orchestrator restart every healthy process; readiness does, so
    traffic goes only to instances that reach their store and hold a signing key.
    """
    rt = runtime(request)
    reason = ""
    try:
        with anyio.fail_after(READY_TIMEOUT):
            await rt.store.get_session("readyz-probe")
    except (StoreError, TimeoutError) as exc:
        reason = f"store unreachable: {type(exc).__name__}"
    if not reason and rt.ring.signing_key(rt.clock()) is None:
        reason = "no signing key"
    if reason:
        return JSONResponse({"status": "unavailable", "reason": reason}, status_code=503, headers={"Retry-After": "2"})
    return JSONResponse({"status": "ready"})


routes = [
    Route("/metrics", metrics, methods=["GET"]),
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
]
