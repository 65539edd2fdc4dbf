"""What the resource kit costs: a protected route vs the same route unprotected.

One uvicorn worker serves both routes on loopback from a subprocess (its own
core); one load generator in this process drives both, alternating in rounds
so drift (thermal, noisy neighbours) hits both alike. The protected route
sits behind :class:`BearerAuthMiddleware` and calls :func:`require_auth`; each
connection presents its own valid ES256 access token, as real clients do.

``run()`` returns a dict and prints nothing; the target is ``ratio >= 0.85``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route, Router

from silentauth.core.keys import SigningKey
from silentauth.core.tokens import AccessTokenVerifier, mint
from silentauth.resource import BearerAuthMiddleware, TokenAuthenticator, require_auth

ISSUER = "http://bench.invalid"
AUDIENCE = "bench"
TARGET = 0.85
_JWK_ENV = "SILENTAUTH_BENCH_JWK"
_ROOT = Path(__file__).resolve().parent.parent


async def _payload(request: Request) -> Response:
    return JSONResponse({"ok": True, "items": [1, 2, 3]})


async def _protected(request: Request) -> Response:
    require_auth(request)
    return await _payload(request)


def create_app() -> Starlette:
    """The server side (uvicorn ``--factory``): ``/open/`` and ``/protected/``."""
    key = SigningKey.from_jwk(json.loads(os.environ[_JWK_ENV]))
    verifier = AccessTokenVerifier(
        lambda kid, now: key if kid == key.kid else None, ISSUER, AUDIENCE
    )
    revoked: set[str] = {"some-revoked-session"}
    auth = TokenAuthenticator(verifier, revoked.__contains__)
    protected = BearerAuthMiddleware(Router([Route("/", _protected)]), auth)
    return Starlette(
        routes=[
            Mount("/open", app=Router([Route("/", _payload)])),
            Mount("/protected", app=protected),
        ]
    )


def _token(key: SigningKey, now: float) -> str:
    claims = {
        "iss": ISSUER,
        "sub": secrets.token_hex(8),
        "aud": AUDIENCE,
        "exp": int(now + 3600),
        "iat": int(now),
        "jti": secrets.token_urlsafe(12),
        "sid": secrets.token_urlsafe(16),
        "scope": "openid api",
        "auth_time": int(now),
        "client_id": "bench",
    }
    return mint(key, claims)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _server(jwk: dict[str, Any], port: int) -> Iterator[None]:
    env = {**os.environ, _JWK_ENV: json.dumps(jwk)}
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(_ROOT), env.get("PYTHONPATH")])
    )
    cmd = [sys.executable, "-m", "uvicorn", "--factory", "bench.resource:create_app"]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    cmd += ["--log-level", "warning", "--no-access-log"]
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
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def _connection(port: int, request: bytes, until: float) -> int:
    """Send ``request`` over one keep-alive connection until ``until``; count 200s."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    done = 0
    try:
        while time.monotonic() < until:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(f"bench request failed: {head[:40]!r}")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            done += 1
    finally:
        writer.close()
    return done


async def _load(port: int, requests: list[bytes], seconds: float) -> float:
    until = time.monotonic() + seconds
    start = time.monotonic()
    counts = await asyncio.gather(*(_connection(port, r, until) for r in requests))
    return sum(counts) / (time.monotonic() - start)


def run(
    seconds: float = 2.0, rounds: int = 3, connections: int = 32, warmup: float = 0.5
) -> dict[str, Any]:
    """Measure both routes; returns requests/s, their ratio and whether it meets TARGET."""
    now = time.time()
    private = ec.generate_private_key(ec.SECP256R1())
    key = SigningKey("bench-key", private.public_key(), private, now, now + 86400)
    host = b"Host: 127.0.0.1\r\n"
    open_req = b"GET /open/ HTTP/1.1\r\n" + host + b"\r\n"
    protected_reqs = [
        b"GET /protected/ HTTP/1.1\r\n"
        + host
        + b"Authorization: Bearer "
        + _token(key, now).encode()
        + b"\r\n\r\n"
        for _ in range(connections)
    ]
    open_reqs = [open_req] * connections
    port = _free_port()
    unprotected: list[float] = []
    protected: list[float] = []
    with _server(key.jwk(), port):

        async def measure() -> None:
            await _load(port, open_reqs, warmup)
            await _load(port, protected_reqs, warmup)  # first use verifies each token
            for _ in range(rounds):
                unprotected.append(await _load(port, open_reqs, seconds))
                protected.append(await _load(port, protected_reqs, seconds))

        asyncio.run(measure())
    open_rps = statistics.median(unprotected)
    protected_rps = statistics.median(protected)
    ratio = protected_rps / open_rps if open_rps else 0.0
    return {
        "name": "resource",
        "unprotected_rps": round(open_rps, 1),
        "protected_rps": round(protected_rps, 1),
        "ratio": round(ratio, 3),
        "target": TARGET,
        "ok": ratio >= TARGET,
        "connections": connections,
        "seconds": seconds,
        "rounds": rounds,
        "samples": {"unprotected": unprotected, "protected": protected},
    }
