"""Idle authenticated WebSockets at scale: memory per connection, CPU per re-authentication.

One uvicorn worker (a subprocess, so its memory and CPU are its own) runs
:class:`~silentauth.resource.websocket.WebSocketAuthenticator` with an idle
handler. This process opens ``connections`` WebSockets on loopback, each
authenticated by its own ES256 token (its own user and session), then:

1. holds them ``idle`` seconds on long-lived tokens: the server's CPU here is
   the cost of merely keeping them (the lease sweeper, pings);
2. holds them ``hold`` seconds while each re-authenticates on its token's
   schedule: lifetimes of ``ttl`` seconds with ±``jitter``, renewed at half
   the lifetime as the clients do. A deadline missed shows up as a close.

Reported: server RSS per connection, idle CPU, CPU per re-authentication
(CPU during phase 2 minus phase 1, per re-auth), re-auths per second, and
connections the server closed (must be 0). ``run()`` returns a dict and prints
nothing. Clients negotiate permessage-deflate, as browsers do.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import resource
import secrets
import socket
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric import ec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from silentauth.core.keys import SigningKey
from silentauth.core.tokens import AccessTokenVerifier, mint
from silentauth.resource.verify import TokenAuthenticator
from silentauth.resource.websocket import AuthenticatedWebSocket, WebSocketAuthenticator

ISSUER = "http://bench.invalid"
AUDIENCE = "bench"
_JWK_ENV = "SILENTAUTH_BENCH_JWK"
_ROOT = Path(__file__).resolve().parent.parent
LONG_TTL = 3600
OPEN_AUTH_TIMEOUT = 60.0


def _rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def create_app() -> Starlette:
    """The server side (uvicorn ``--factory``): ``/ws`` and ``/stats``."""
    key = SigningKey.from_jwk(json.loads(os.environ[_JWK_ENV]))
    verifier = AccessTokenVerifier(lambda kid, now: key if kid == key.kid else None, ISSUER, AUDIENCE)
    revoked: set[str] = set()
    # auth_timeout: the opening burst (thousands of handshakes at once, on a shared machine)
    # may hold an auth message back for more than the default 5 s; what is measured here is
    # the steady state after it, so the burst must not fail the run.
    sockets = WebSocketAuthenticator(
        TokenAuthenticator(verifier, revoked.__contains__), reauth_burst=3, auth_timeout=OPEN_AUTH_TIMEOUT
    )
    ends: Counter[str] = Counter()

    async def idle(conn: AuthenticatedWebSocket) -> None:
        async for _ in conn:
            pass

    async def ws(websocket: WebSocket) -> None:
        ending = await sockets.serve(websocket, idle)
        ends["client left" if ending is None else f"{ending.code} {ending.reason}"] += 1

    async def stats(request: Request) -> Response:
        return JSONResponse(
            {"rss_kib": _rss_kib(), "cpu_s": time.process_time(), "open": len(sockets.sweeper), "ends": ends}
        )

    return Starlette(routes=[WebSocketRoute("/ws", ws), Route("/stats", stats)])


def _token(key: SigningKey, n: int, ttl: float) -> str:
    """User ``n``'s token; ``exp`` is a whole second, so ``ttl`` is rounded down."""
    now = time.time()
    claims = {
        "iss": ISSUER, "aud": AUDIENCE, "sub": f"user-{n}", "sid": f"session-{n}",
        "exp": int(now + ttl), "iat": int(now), "jti": secrets.token_urlsafe(12),
        "scope": "api", "auth_time": int(now), "client_id": "bench",
    }
    return mint(key, claims)


def _raise_open_files(connections: int) -> None:
    """Allow this process (and the server it starts) a descriptor per socket, and some."""
    need = connections + 1024
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= need:
        return
    if hard != resource.RLIM_INFINITY and hard < need:
        raise RuntimeError(f"{connections} connections need {need} open files; the hard limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _server(jwk: dict[str, Any], port: int, deflate: bool = True) -> Iterator[None]:
    env = {**os.environ, _JWK_ENV: json.dumps(jwk)}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_ROOT), env.get("PYTHONPATH")]))
    cmd = [sys.executable, "-m", "uvicorn", "--factory", "bench.realtime:create_app"]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--workers", "1", "--backlog", "4096"]
    cmd += ["--log-level", "warning", "--no-access-log", "--ws-per-message-deflate", str(deflate).lower()]
    proc = subprocess.Popen(cmd, cwd=_ROOT, env=env, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("bench server did not start") from None
                time.sleep(0.05)
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Fleet:
    """The client side: ``connections`` sockets and their re-authentication schedule."""

    def __init__(self, key: SigningKey, url: str, ttl: float, jitter: float) -> None:
        self.key, self.url, self.ttl, self.jitter = key, url, ttl, jitter
        # By user number: a reauth must carry the token of the socket's own user and session.
        self.sockets: dict[int, ClientConnection] = {}
        self.reauths = 0
        self.latencies: list[float] = []
        self.closed: Counter[str] = Counter()
        self.renewing = False

    async def open_one(self, n: int) -> None:
        # Signed before connecting: the auth message follows the handshake at once.
        auth = json.dumps({"type": "auth", "token": _token(self.key, n, LONG_TTL)})
        ws = await connect(self.url, open_timeout=120, ping_interval=None, max_queue=4)
        await ws.send(auth)
        reply = json.loads(await ws.recv())
        if reply.get("type") != "auth-ok":
            raise RuntimeError(f"not authenticated: {reply}")
        self.sockets[n] = ws

    async def open_all(self, count: int, batch: int = 100) -> None:
        for start in range(0, count, batch):
            await asyncio.gather(*(self.open_one(n) for n in range(start, min(count, start + batch))))

    async def renew_forever(self, n: int, ws: ClientConnection) -> None:
        """Renew at half of each token's (jittered) lifetime, starting at a random point."""
        await asyncio.sleep(random.uniform(0, self.ttl / 2))
        while True:
            lifetime = self.ttl * random.uniform(1 - self.jitter, 1 + self.jitter)
            token = _token(self.key, n, lifetime)
            # What the server holds us to is the whole-second exp, not the drawn lifetime.
            lifetime = int(time.time() + lifetime) - time.time()
            sent = time.perf_counter()
            try:
                await ws.send(json.dumps({"type": "reauth", "token": token}))
                await ws.recv()
            except ConnectionClosed as exc:
                rcvd = exc.rcvd
                self.closed[f"{rcvd.code} {rcvd.reason}" if rcvd else "dropped"] += 1
                return
            self.latencies.append(time.perf_counter() - sent)
            self.reauths += 1
            await asyncio.sleep(lifetime / 2)


async def _stats(http: httpx.AsyncClient) -> dict[str, Any]:
    r = await http.get("/stats")
    r.raise_for_status()
    body: dict[str, Any] = r.json()
    return body


def run(
    connections: int = 10_000,
    idle: float = 20.0,
    hold: float = 40.0,
    ttl: float = 20.0,
    jitter: float = 0.2,
    deflate: int = 1,
) -> dict[str, Any]:
    """Open ``connections`` sockets, hold them idle, then re-authenticating; measure the server.

    ``deflate=0`` turns permessage-deflate off on the server (its per-connection zlib
    state is most of the memory per idle connection).
    """
    _raise_open_files(connections)  # before the server starts: it inherits the limit
    now = time.time()
    private = ec.generate_private_key(ec.SECP256R1())
    key = SigningKey("bench-key", private.public_key(), private, now, now + 86400)
    port = _free_port()
    result: dict[str, Any] = {
        "name": "realtime", "connections": connections, "ttl_s": ttl, "jitter": jitter, "deflate": bool(deflate)
    }
    with _server(key.jwk(), port, bool(deflate)):

        async def measure() -> None:
            fleet = Fleet(key, f"ws://127.0.0.1:{port}/ws", ttl, jitter)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
                empty = await _stats(http)
                t0 = time.monotonic()
                await fleet.open_all(connections)
                result["open_s"] = round(time.monotonic() - t0, 1)
                await asyncio.sleep(1.0)  # let the server settle after the burst
                opened = await _stats(http)
                await asyncio.sleep(idle)
                idled = await _stats(http)
                tasks = [asyncio.create_task(fleet.renew_forever(n, ws)) for n, ws in fleet.sockets.items()]
                start, began, client_cpu = fleet.reauths, time.monotonic(), time.process_time()
                await asyncio.sleep(hold)
                held = await _stats(http)
                reauths, spent = fleet.reauths - start, time.monotonic() - began
                # The load generator's own CPU: near 100 % of a core, its event loop lags,
                # and that lag is in the re-authentication latency below.
                result["client_cpu_percent"] = round(100 * (time.process_time() - client_cpu) / spent, 1)
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                await asyncio.gather(*(ws.close() for ws in fleet.sockets.values()), return_exceptions=True)
            per_conn = (opened["rss_kib"] - empty["rss_kib"]) / max(1, connections)
            idle_cpu = (idled["cpu_s"] - opened["cpu_s"]) / idle
            busy_cpu = (held["cpu_s"] - idled["cpu_s"]) / spent
            per_reauth = (busy_cpu - idle_cpu) * spent / max(1, reauths)
            result.update({
                "server_open": opened["open"],
                "rss_empty_mib": round(empty["rss_kib"] / 1024, 1),
                "rss_open_mib": round(opened["rss_kib"] / 1024, 1),
                "kib_per_connection": round(per_conn, 1),
                "idle_cpu_percent": round(100 * idle_cpu, 2),
                "reauth_per_s": round(reauths / spent, 1),
                "reauth_cpu_us": round(per_reauth * 1e6, 1),
                "busy_cpu_percent": round(100 * busy_cpu, 2),
                "reauth_p50_ms": round(1000 * statistics.median(fleet.latencies), 2) if fleet.latencies else None,
                "reauth_p99_ms": round(1000 * statistics.quantiles(fleet.latencies, n=100)[98], 2)
                if len(fleet.latencies) >= 100 else None,
                "closed_by_server": dict(fleet.closed),
                "missed_deadlines": sum(fleet.closed.values()),
                "ok": not fleet.closed and opened["open"] == connections,
            })

        asyncio.run(measure())
    return result


if __name__ == "__main__":
    print(json.dumps(run(**{k: float(v) if "." in v else int(v) for k, v in (a.split("=") for a in sys.argv[1:])}), indent=2))
