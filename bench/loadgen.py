"""The load generator: raw HTTP/1.1 keep-alive over asyncio, in its own process.

``python -m bench.loadgen '<json spec>'`` prints one JSON line of results.
Every stack is driven by this same code with the same connection count and
timing, so their figures compare. Raw sockets rather than httpx: an httpx
client tops out near the rates we measure and would flatten the differences.

A spec lists targets (stack, port, mode, server pid). Each target gets its own
pool of connections; then, round after round, each target in turn is driven
alone for one short slice. Per slice we record the completed requests and the
server's CPU time (``/proc/<pid>/stat`` of the server and its children), so a
target yields one rate and one CPU-per-request figure per round.

Modes: ``noop`` (the stack's no-op route), ``get`` (``GET`` of the target's
``path``, each connection presenting its own bearer token from ``tokens``, or
none when the list is empty), ``login`` (one password login per
request) and ``refresh`` (each connection logs in once, then refreshes its
own session over and over, always presenting the token it got last, as a
rotating client must: the pool of distinct refresh tokens is one per connection).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

USERNAME = "bench"
PASSWORD = "bench-password-1"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
DOT_CLIENT = "bench-public-client"  # bench.peers.dot_app.CLIENT_ID (not imported: Django setup)


@dataclass(frozen=True)
class Dialect:
    """How one stack spells login, refresh and the no-op route."""

    login: Callable[[], tuple[str, dict[str, str], bytes]]
    refresh: Callable[[str], tuple[str, dict[str, str], bytes]]
    token_from_login: Callable[[dict[str, Any]], str]
    token_from_refresh: Callable[[dict[str, Any]], str]
    noop: str


def _form(data: dict[str, str]) -> tuple[dict[str, str], bytes]:
    return {"Content-Type": "application/x-www-form-urlencoded"}, urlencode(data).encode()


def _json(data: dict[str, str]) -> tuple[dict[str, str], bytes]:
    return {"Content-Type": "application/json"}, json.dumps(data).encode()


DIALECTS: dict[str, Dialect] = {
    "silentauth": Dialect(
        login=lambda: ("/auth/token", *_form({"grant_type": "password", "username": USERNAME, "password": PASSWORD})),
        refresh=lambda t: ("/auth/token", *_form({"grant_type": "refresh_token", "refresh_token": t})),
        token_from_login=lambda b: str(b["refresh_token"]),
        token_from_refresh=lambda b: str(b["refresh_token"]),
        noop="/healthz",
    ),
    "simplejwt": Dialect(
        login=lambda: ("/api/token/", *_json({"username": USERNAME, "password": PASSWORD})),
        refresh=lambda t: ("/api/token/refresh/", *_json({"refresh": t})),
        token_from_login=lambda b: str(b["refresh"]),
        token_from_refresh=lambda b: str(b["refresh"]),
        noop="/noop",
    ),
    "flask-jwt-extended": Dialect(
        login=lambda: ("/login", *_json({"username": USERNAME, "password": PASSWORD})),
        refresh=lambda t: ("/refresh", {"Authorization": f"Bearer {t}", "Content-Length": "0"}, b""),
        token_from_login=lambda b: str(b["refresh_token"]),
        token_from_refresh=lambda b: str(b["refresh_token"]),
        noop="/noop",
    ),
    "django-oauth-toolkit": Dialect(
        login=lambda: ("/o/token/", *_form({
            "grant_type": "password", "username": USERNAME, "password": PASSWORD, "client_id": DOT_CLIENT,
        })),
        refresh=lambda t: ("/o/token/", *_form({"grant_type": "refresh_token", "refresh_token": t, "client_id": DOT_CLIENT})),
        token_from_login=lambda b: str(b["refresh_token"]),
        token_from_refresh=lambda b: str(b["refresh_token"]),
        noop="/noop",
    ),
    # Its sessions were made by authorization-code + PKCE flows at start-up;
    # "login" takes one of their refresh tokens (see bench/peers/oidc/server.mjs).
    "oidc-provider": Dialect(
        login=lambda: ("/bench/session", {}, b""),
        refresh=lambda t: ("/token", *_form({"grant_type": "refresh_token", "refresh_token": t, "client_id": "bench"})),
        token_from_login=lambda b: str(b["refresh_token"]),
        token_from_refresh=lambda b: str(b["refresh_token"]),
        noop="/noop",
    ),
}
# The same app under another HTTP server speaks the same dialect.
DIALECTS["oidc-provider-idtoken"] = DIALECTS["oidc-provider"]
DIALECTS["silentauth-granian"] = DIALECTS["silentauth"]


def http_request(method: str, path: str, port: int, headers: dict[str, str], body: bytes) -> bytes:
    """One HTTP/1.1 request's bytes (``Content-Length`` added to a POST)."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
    headers = {**headers, "Content-Length": str(len(body))} if method == "POST" else headers
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def _login(dialect: Dialect, port: int) -> tuple[str, int, dict[str, str], bytes]:
    path, headers, body = dialect.login()
    return path, port, headers, body


class Connection:
    """One keep-alive connection: send a request, read one whole response."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def exchange(self, request: bytes) -> tuple[int, bytes]:
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length, chunked = 0, False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            low = name.strip().lower()
            if low == b"content-length":
                length = int(value)
            elif low == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
        if chunked:  # Django sets no Content-Length without its middleware
            return status, await self._chunks()
        return status, await self.reader.readexactly(length) if length else b""

    async def _chunks(self) -> bytes:
        parts: list[bytes] = []
        while True:
            size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await self.reader.readuntil(b"\r\n")  # no trailers expected
                return b"".join(parts)
            parts.append((await self.reader.readexactly(size + 2))[:-2])


def cpu_ticks(pids: list[int]) -> int:
    """User + system CPU ticks used so far by these processes (all threads)."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rpartition(")")[2].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total


def process_tree(root: int) -> list[int]:
    """``root`` and its descendants (granian serves from a child process)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parents[int(entry)] = int(f.read().rpartition(")")[2].split()[1])
            except OSError:
                continue
    tree, frontier = [root], [root]
    while frontier:
        kids = [p for p, pp in parents.items() if pp in frontier]
        tree += kids
        frontier = kids
    return tree


class Target:
    """One stack in one mode, with its own pool of keep-alive connections."""

    def __init__(self, spec: dict[str, Any], connections: int) -> None:
        self.stack, self.port, self.mode = str(spec["stack"]), int(spec["port"]), str(spec["mode"])
        self.path = str(spec.get("path", "/"))
        self.tokens = [str(t) for t in spec.get("tokens", [])]
        # A ``get`` target needs no dialect: it names its own path.
        self.dialect = DIALECTS[str(spec.get("dialect", self.stack if self.mode != "get" else "silentauth"))]
        self.pids = process_tree(int(spec["pid"])) if spec.get("pid") else []
        self.connections = connections
        self.conns: list[tuple[Connection, list[str]]] = []
        self.rates: list[float] = []
        self.cpu_us: list[float] = []
        self.latencies: list[float] = []
        self.errors: dict[int, int] = {}

    async def open(self) -> None:
        # A few logins at a time: dozens of Argon2 hashes at once on a busy machine
        # can outlast a store's pool timeout, and set-up is not what is measured.
        logins = asyncio.Semaphore(4)

        async def one(i: int) -> tuple[Connection, list[str]]:
            c = Connection(*await asyncio.open_connection("127.0.0.1", self.port))
            token = [self.tokens[i % len(self.tokens)] if self.tokens else ""]
            if self.mode == "refresh":  # the pool: one fresh session per connection
                async with logins:
                    status, body = await c.exchange(http_request("POST", *_login(self.dialect, self.port)))
                if status != 200:
                    raise RuntimeError(f"{self.stack}: login failed with {status}: {body[:200]!r}")
                token[0] = self.dialect.token_from_login(json.loads(body))
            return c, token

        self.conns = list(await asyncio.gather(*(one(i) for i in range(self.connections))))

    def request(self, token: str) -> bytes:
        if self.mode == "noop":
            return http_request("GET", self.dialect.noop, self.port, {}, b"")
        if self.mode == "get":
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            return http_request("GET", self.path, self.port, headers, b"")
        if self.mode == "login":
            return http_request("POST", *_login(self.dialect, self.port))
        path, headers, body = self.dialect.refresh(token)
        return http_request("POST", path, self.port, headers, body)

    async def slice(self, seconds: float, record: bool) -> None:
        """Drive every connection for ``seconds``; count completions in the window."""
        start = time.perf_counter()
        stop = start + seconds
        done = 0
        finished = 0

        async def loop(c: Connection, token: list[str]) -> None:
            nonlocal done, finished
            while (t0 := time.perf_counter()) < stop:
                status, body = await c.exchange(self.request(token[0]))
                t1 = time.perf_counter()
                finished += 1
                if status != 200:
                    self.errors[status] = self.errors.get(status, 0) + 1
                    if self.mode == "refresh":
                        raise RuntimeError(f"{self.stack}: refresh failed with {status}: {body[:200]!r}")
                    continue
                if self.mode == "refresh":
                    token[0] = self.dialect.token_from_refresh(json.loads(body))
                if t1 <= stop:
                    done += 1
                    if record:
                        self.latencies.append(t1 - t0)

        ticks = cpu_ticks(self.pids)
        try:
            await asyncio.gather(*(loop(c, t) for c, t in self.conns))
        except (OSError, asyncio.IncompleteReadError) as exc:
            raise RuntimeError(f"{self.stack} ({self.mode}): connection lost: {exc!r}") from exc
        used = (cpu_ticks(self.pids) - ticks) / CLOCK_TICKS
        if record:
            self.rates.append(done / seconds)
            if self.pids and finished:
                self.cpu_us.append(used / finished * 1e6)

    def result(self) -> dict[str, Any]:
        lat = sorted(self.latencies)
        n = len(lat)
        return {
            "stack": self.stack,
            "mode": self.mode,
            "rps": self.rates,
            "cpu_us_per_request": self.cpu_us,
            "p50_ms": lat[n // 2] * 1e3 if n else None,
            "p99_ms": lat[min(n - 1, int(n * 0.99))] * 1e3 if n else None,
            "requests": n,
            "errors": self.errors,
        }


async def _run(spec: dict[str, Any]) -> dict[str, Any]:
    """Open every target, then alternate short slices between them, round by round.

    Short interleaved slices make the comparison fair on a busy machine: a
    noisy neighbour's burst hits one slice of each target, not one whole target.
    """
    conns = int(spec.get("connections", 32))
    targets = [Target(t, conns) for t in spec["targets"]]
    for t in targets:
        await t.open()
    for t in targets:
        await t.slice(float(spec.get("warmup", 0.5)), record=False)
    for _ in range(int(spec.get("rounds", 5))):
        for t in targets:
            await t.slice(float(spec.get("slice", 2.0)), record=True)
    return {"targets": [t.result() for t in targets]}


def main(argv: list[str]) -> int:
    spec = json.loads(argv[0])
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # plain asyncio works, only slower
        pass
    print(json.dumps(asyncio.run(_run(spec))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
