"""The adapter's own CPU cost, without an HTTP server or a network in the way.

``python -m bench.app_cost '<json>'`` imports each app of :mod:`bench.protected`
(trusting the live issuer named in the spec), calls it directly (ASGI with a
minimal scope, WSGI with a minimal environ) and prints, per framework, the CPU
time of one request to ``/open`` (no token) and to ``/protected`` (a valid
token): the minimum over rounds of ``process_time`` per request, which load
from other processes barely moves. It complements the server figures of
:mod:`bench.resource`, which include the HTTP server and are noisy on a shared
machine. For FastAPI it also prices the dependency form (``depends_us``:
``/protected`` of ``create_app(depends=True)``). One process: Django's
settings are process-wide, and no app starts a server.
"""

from __future__ import annotations

import asyncio
import importlib
import io
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from bench.protected import ISSUER_ENV

Call = Callable[[str, str | None], Awaitable[int]]
# Another form of an app, whose /protected is priced too: its result key -> (app, form).
VARIANTS = {"fastapi_depends_us": ("fastapi", {"depends": True})}


def _asgi(app: Any) -> Call:
    async def call(path: str, token: str | None) -> int:
        headers = [(b"host", b"127.0.0.1")]
        if token is not None:
            headers.append((b"authorization", b"Bearer " + token.encode()))
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
                 "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "", "query_string": b"",
                 "headers": headers, "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80)}
        status: list[int] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])

        await app(scope, receive, send)
        return status[0]

    return call


def _wsgi(app: Callable[..., Iterable[bytes]]) -> Call:
    async def call(path: str, token: str | None) -> int:
        environ = {"REQUEST_METHOD": "GET", "PATH_INFO": path, "SCRIPT_NAME": "", "QUERY_STRING": "",
                   "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1",
                   "HTTP_HOST": "127.0.0.1", "wsgi.version": (1, 0), "wsgi.url_scheme": "http",
                   "wsgi.input": io.BytesIO(b""), "wsgi.errors": sys.stderr, "wsgi.multithread": True,
                   "wsgi.multiprocess": False, "wsgi.run_once": False}
        if token is not None:
            environ["HTTP_AUTHORIZATION"] = f"Bearer {token}"
        status: list[int] = []

        def start_response(line: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
            status.append(int(line[:3]))

        body = app(environ, start_response)
        for _ in body:
            pass
        close = getattr(body, "close", None)
        if close is not None:
            close()
        return status[0]

    return call


def _apps(names: list[str]) -> dict[str, Call]:
    calls: dict[str, Call] = {}
    for name in names:
        module = importlib.import_module(f"bench.protected.{name}_app")
        if name in ("starlette", "fastapi"):
            calls[name] = _asgi(module.create_app())
        else:
            calls[name] = _wsgi(module.application if name == "drf" else module.app)
    for key, (name, options) in VARIANTS.items():
        if name in names:
            calls[key] = _asgi(importlib.import_module(f"bench.protected.{name}_app").create_app(**options))
    return calls


async def _measure(spec: dict[str, Any]) -> dict[str, Any]:
    calls = _apps(list(spec["frameworks"]))
    token, n, rounds = str(spec["token"]), int(spec.get("requests", 2000)), int(spec.get("rounds", 7))
    cases = [(name, path, tok) for name in calls for path, tok in (("/open", None), ("/protected", token))]
    for name, path, tok in cases:  # warm up, and check the answers are what the bench expects
        for _ in range(50):
            if await calls[name](path, tok) != 200:
                raise RuntimeError(f"{name} {path}: not 200")
        if await calls[name]("/protected", None) != 401:
            raise RuntimeError(f"{name}: /protected without a token was not refused")
    best = {case: float("inf") for case in cases}
    for _ in range(rounds):  # interleaved, minimum kept: the least disturbed round
        for case in cases:
            name, path, tok = case
            call = calls[name]
            start = time.process_time()
            for _ in range(n):
                await call(path, tok)
            best[case] = min(best[case], (time.process_time() - start) / n * 1e6)
    out: dict[str, Any] = {}
    for name in calls:
        if name in VARIANTS:
            continue
        open_us, protected_us = best[(name, "/open", None)], best[(name, "/protected", token)]
        out[name] = {"open_us": round(open_us, 1), "protected_us": round(protected_us, 1),
                     "adapter_us": round(protected_us - open_us, 1), "ratio": round(open_us / protected_us, 3)}
    for key, (name, _) in VARIANTS.items():
        if key in calls:  # the variant's /protected, in the same position as the app's
            out[name][key.removeprefix(f"{name}_")] = round(best[(key, "/protected", token)], 1)
    return out


def main(argv: list[str]) -> int:
    spec = json.loads(argv[0])
    os.environ[ISSUER_ENV] = str(spec["issuer"])
    print(json.dumps(asyncio.run(_measure(spec))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
