"""The refresh hot path, stage by stage, in-process and without a profiler, in CPU time.

``python -m bench.breakdown`` builds the real app (SQLite file in WAL mode,
rate limits off) and times each stage of a refresh in a tight loop: the
ES256 signature, the access-token mint, the refresh-token MAC, the store's
compare-and-swap (alone and 32 in one batch), the whole :meth:`SessionService.refresh`
(alone and 32 concurrent chains, whose swaps meet in batches), and the whole
ASGI app answering ``POST /auth/token`` (Starlette, middleware, form parsing,
JSON) with no HTTP server around it. What the bench's per-core cost adds on
top of the last figure is the HTTP server (uvicorn + httptools + uvloop).

Read the tight-loop stages as lower bounds: alone in a loop, the signature
and the swap keep their tables in the CPU cache, which a whole request does
not. The "32 concurrent refresh chains" row is the one to compare with the
bench: its refreshes meet in batches (:mod:`silentauth.core.batch`), as
concurrent requests do in the server.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

from bench.inprocess import bench_app
from silentauth.core.ports import RotateRequest
from silentauth.server.token_endpoint import TokenEndpoint

N = 2000


async def _asgi(app: Any, method: str, path: str, body: bytes, ctype: bytes) -> tuple[int, bytes]:
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
        "headers": [(b"host", b"127.0.0.1"), (b"content-type", ctype), (b"content-length", str(len(body)).encode())],
        "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 8000), "state": {},
    }
    sent = False
    out: dict[str, Any] = {"status": 0, "body": b""}

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            await asyncio.sleep(3600)
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            out["status"] = message["status"]
        elif message["type"] == "http.response.body":
            out["body"] += message.get("body", b"")

    await app(scope, receive, send)
    return int(out["status"]), bytes(out["body"])


def _raw_refresh_app(svc: Any) -> Callable[..., Awaitable[None]]:
    """What a fast path for ``grant_type=refresh_token`` could cost: no Request,
    router, form parser or Response objects; same service call, same JSON out.
    An experiment to size the framework's share, not a proposed implementation
    (it skips the size caps and error mapping the real route has)."""
    headers = [(b"content-type", b"application/json"), (b"cache-control", b"no-store"), (b"pragma", b"no-cache")]

    async def app(scope: dict[str, Any], receive: Callable[[], Awaitable[dict[str, Any]]], send: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
        message = await receive()
        form = dict(parse_qsl(message["body"].decode()))
        grant = await svc.refresh(form["refresh_token"], ip=scope["client"][0])
        body = json.dumps({
            "access_token": grant.access_token, "token_type": "Bearer", "expires_in": grant.expires_in,
            "refresh_token": grant.refresh_token, "scope": grant.scope,
        }).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [*headers, (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    return app


async def _time(label: str, fn: Callable[[], Awaitable[Any]], n: int = N) -> tuple[str, float]:
    for _ in range(50):
        await fn()
    # CPU time of this process, not wall time: neighbours on a shared machine
    # would otherwise inflate every stage.
    t0 = time.process_time()
    for _ in range(n):
        await fn()
    return label, (time.process_time() - t0) / n * 1e6


async def _per(row: Awaitable[tuple[str, float]], n: int) -> tuple[str, float]:
    label, us = await row
    return label, us / n


async def measure() -> list[tuple[str, float]]:
    with tempfile.TemporaryDirectory(prefix="silentauth-breakdown-") as tmp:
        app = bench_app(Path(tmp))
        async with app.router.lifespan_context(app):
            rt = app.state.runtime
            await rt.ensure_user("bench", "pw")
            svc = rt.service
            grant = await svc.login("bench", "pw")
            session, now = grant.session, rt.clock()
            key = rt.ring.signing_key(now)
            token = [grant.refresh_token]

            async def sign() -> None:
                key.sign(b"x" * 400)

            async def mint() -> None:
                svc.mint_access(session, session.scope, now)

            async def mac() -> None:
                rt.refresh_tokens.issue(session.id, 7)

            async def parse() -> None:
                rt.refresh_tokens.parse(grant.refresh_token)

            counter = [0]
            spare = await svc.login("bench", "pw")

            async def cas_sync() -> None:
                with rt.store._lock:
                    rt.store._rotate_one(spare.session.id, counter[0], now, now + 3600)
                counter[0] += 1

            async def cas() -> None:
                await rt.store.rotate(spare.session.id, counter[0], now, now + 3600)
                counter[0] += 1

            batch_sessions = [(await svc.login("bench", "pw")).session.id for _ in range(32)]
            batch_counters = [0] * 32

            async def cas_batch() -> None:
                """32 swaps of distinct sessions in one store call, as a full batch brings them."""
                requests = [RotateRequest(sid, batch_counters[i], now + 3600) for i, sid in enumerate(batch_sessions)]
                for result in await rt.store.rotate_many(requests, now):
                    if not result.swapped:
                        raise RuntimeError("a batched swap failed")
                for i in range(32):
                    batch_counters[i] += 1

            async def service_chains(width: int = 32, each: int = 60) -> tuple[str, float]:
                """``width`` refresh chains through the service alone (no ASGI, no HTTP)."""
                chains = [(await svc.login("bench", "pw")).refresh_token for _ in range(width)]

                async def chain(i: int) -> None:
                    for _ in range(each):
                        chains[i] = (await svc.refresh(chains[i])).refresh_token

                await asyncio.gather(*(chain(i) for i in range(width)))  # warm up
                t0 = time.process_time()
                await asyncio.gather(*(chain(i) for i in range(width)))
                cpu = (time.process_time() - t0) / (width * each) * 1e6
                return f"SessionService.refresh: {width} concurrent chains (batched)", cpu

            async def metric() -> None:
                rt.metrics.on_refresh("rotated")

            async def refresh() -> None:
                token[0] = (await svc.refresh(token[0])).refresh_token

            async def http_refresh() -> None:
                body = urlencode({"grant_type": "refresh_token", "refresh_token": token[0]}).encode()
                status, out = await _asgi(app, "POST", "/auth/token", body, b"application/x-www-form-urlencoded")
                if status != 200:
                    raise RuntimeError(out)
                token[0] = json.loads(out)["refresh_token"]

            async def raw_refresh() -> None:
                body = urlencode({"grant_type": "refresh_token", "refresh_token": token[0]}).encode()
                status, out = await _asgi(raw, "POST", "/auth/token", body, b"application/x-www-form-urlencoded")
                if status != 200:
                    raise RuntimeError(out)
                token[0] = json.loads(out)["refresh_token"]

            raw = _raw_refresh_app(svc)
            token_endpoint = TokenEndpoint(rt)

            async def healthz() -> None:
                await _asgi(app, "GET", "/healthz", b"", b"text/plain")

            async def concurrent_refresh(
                width: int = 32, each: int = 60, target: Any = app, label: str = "ASGI app"
            ) -> tuple[str, float]:
                """``width`` clients refreshing at once, interleaved on one event loop."""
                chains = [(await svc.login("bench", "pw")).refresh_token for _ in range(width)]

                async def chain(i: int) -> None:
                    for _ in range(each):
                        body = urlencode({"grant_type": "refresh_token", "refresh_token": chains[i]}).encode()
                        status, out = await _asgi(target, "POST", "/auth/token", body, b"application/x-www-form-urlencoded")
                        if status != 200:
                            raise RuntimeError(out)
                        chains[i] = json.loads(out)["refresh_token"]

                t0 = time.process_time()
                await asyncio.gather(*(chain(i) for i in range(width)))
                cpu = (time.process_time() - t0) / (width * each) * 1e6
                return f"{label}: {width} concurrent refresh chains", cpu

            rows = [
                await _time("ES256 sign (cryptography)", sign),
                await _time("mint access token (claims, JSON, base64, sign)", mint),
                await _time("refresh token MAC (issue)", mac),
                await _time("refresh token parse + MAC check", parse),
                await _time("metrics event (prometheus counter)", metric),
                await _time("SQLite UPDATE ... RETURNING, autocommit (store._rotate_one)", cas_sync),
                await _time("store.rotate (the store API around it)", cas),
                await _per(_time("store.rotate_many, 32 sessions (one transaction), per swap", cas_batch, N // 32), 32),
                await _time("SessionService.refresh (whole)", refresh),
                await service_chains(),
                await _time("ASGI app: POST /auth/token refresh (no HTTP server)", http_refresh),
                await concurrent_refresh(),
                # The same without Starlette and the middleware around the endpoint:
                # the difference is what the outer layers cost a refresh.
                await concurrent_refresh(target=token_endpoint, label="token endpoint alone"),
                await _time("experiment: bare ASGI callable around SessionService.refresh", raw_refresh),
                await _time("ASGI app: GET /healthz (no HTTP server)", healthz),
            ]
    return rows


def main(argv: list[str]) -> int:
    for label, us in asyncio.run(measure()):
        print(f"{us:8.1f} us  {label}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
