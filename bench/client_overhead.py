"""What ``TokenAuth`` costs per request, and how many refreshes N callers cause.

Both against the real token service (``python -m silentauth serve``, one
uvicorn process pinned to its own core, from :mod:`bench.servers`).

1. **Overhead**: sequential keep-alive ``GET /api/me`` through ``TokenAuth``
   vs the same httpx client with a static ``Authorization`` header, sync and
   async, alternating request by request; medians of latency compared,
   requests/s derived from them. Target: <= 5 %.
   The pure client-side cost per request (auth flow driven by hand, no
   network) is reported too, in microseconds.
2. **Refresh calls**: N callers (50, 500) share one session whose access token
   has just expired and each make one request, released together. Counted on
   the server's ``/metrics`` (every refresh outcome, plus new password
   grants) for TokenAuth and for the peers that are installed: Authlib
   (requests ``OAuth2Session``, httpx ``OAuth2Client``, ``AsyncOAuth2Client``),
   requests-oauthlib and httpx-auth.

``run()`` prints nothing and returns a dict.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import statistics
import threading
import time
import warnings
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import httpx

from bench.loadgen import PASSWORD, USERNAME
from bench.servers import LOADGEN_CPU, running
from silentauth.client import MemoryTokenStore, TokenAuth, TokenSet

TARGET_OVERHEAD = 0.05
OUTCOMES = ("rotated", "grace", "reuse_detected", "expired", "invalid")


@contextlib.contextmanager
def _pinned(cpu: int) -> Iterator[None]:
    """Run this process on the load-generator core, then restore its affinity."""
    if not hasattr(os, "sched_getaffinity") or (os.cpu_count() or 1) < 2:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def _grant(base: str) -> dict[str, Any]:
    r = httpx.post(
        f"{base}/auth/token",
        data={"grant_type": "password", "username": USERNAME, "password": PASSWORD},
    )
    r.raise_for_status()
    body: dict[str, Any] = r.json()
    return body


def _metrics(base: str) -> dict[str, float]:
    values: dict[str, float] = {}
    for line in httpx.get(f"{base}/metrics").text.splitlines():
        for o in OUTCOMES:
            if line.startswith(f'silentauth_refresh_total{{outcome="{o}"}} '):
                values[o] = float(line.split()[-1])
        if line.startswith('silentauth_login_total{outcome="ok"} '):
            values["password_grants"] = float(line.split()[-1])
    return values


# -- 1. overhead ---------------------------------------------------------------
#
# The box is shared and noisy, so the two clients alternate request by request
# (order flipped every pair) and the medians of per-request latency are
# compared: interference that lasts longer than a request hits both alike.


def _summary(bare: list[float], auth: list[float]) -> dict[str, Any]:
    b, a = statistics.median(bare), statistics.median(auth)
    overhead = a / b - 1
    return {
        "requests_each": len(bare),
        "bare_median_us": round(b * 1e6, 1),
        "token_auth_median_us": round(a * 1e6, 1),
        "bare_rps": round(1 / b, 1),
        "token_auth_rps": round(1 / a, 1),
        "overhead": round(overhead, 4),
        "meets_target": overhead <= TARGET_OVERHEAD,
    }


def _paired(bare: Callable[[], int], authed: Callable[[], int], seconds: float) -> dict[str, Any]:
    times: tuple[list[float], list[float]] = ([], [])
    pair = ((0, bare), (1, authed))
    end, i = time.perf_counter() + seconds, 0
    while time.perf_counter() < end:
        for slot, send in pair if i % 2 == 0 else pair[::-1]:
            t0 = time.perf_counter()
            if send() != 200:
                raise RuntimeError("unexpected status in overhead run")
            times[slot].append(time.perf_counter() - t0)
        i += 1
    return _summary(*times)


async def _apaired(
    bare: Callable[[], Awaitable[int]], authed: Callable[[], Awaitable[int]], seconds: float
) -> dict[str, Any]:
    times: tuple[list[float], list[float]] = ([], [])
    pair = ((0, bare), (1, authed))
    end, i = time.perf_counter() + seconds, 0
    while time.perf_counter() < end:
        for slot, send in pair if i % 2 == 0 else pair[::-1]:
            t0 = time.perf_counter()
            if await send() != 200:
                raise RuntimeError("unexpected status in overhead run")
            times[slot].append(time.perf_counter() - t0)
        i += 1
    return _summary(*times)


def _overhead(base: str, seconds: float) -> dict[str, Any]:
    auth = TokenAuth(token_url=f"{base}/auth/token")
    auth.login(USERNAME, PASSWORD)
    assert auth.tokens is not None
    static = {"Authorization": f"Bearer {auth.tokens.access_token}"}
    url = f"{base}/api/me"
    result: dict[str, Any] = {}
    with httpx.Client(headers=static) as bare, httpx.Client(auth=auth) as authed:
        _paired(lambda: bare.get(url).status_code, lambda: authed.get(url).status_code, 0.3)
        result["sync"] = _paired(
            lambda: bare.get(url).status_code, lambda: authed.get(url).status_code, seconds
        )

    async def async_run() -> dict[str, Any]:
        async with httpx.AsyncClient(headers=static) as abare, httpx.AsyncClient(auth=auth) as aauth:

            async def bare_get() -> int:
                return (await abare.get(url)).status_code

            async def auth_get() -> int:
                return (await aauth.get(url)).status_code

            await _apaired(bare_get, auth_get, 0.3)
            return await _apaired(bare_get, auth_get, seconds)

    result["async"] = asyncio.run(async_run())
    cpu = result["client_cpu_us_per_request"] = _flow_cost(auth)
    # A noise-proof bound: the flow's own CPU time over a whole request's latency.
    added = max(0.0, cpu["token_auth"] - cpu["static_header"])
    result["overhead_cpu_bound"] = round(added / result["sync"]["bare_median_us"], 5)
    return result


def _flow_cost(auth: TokenAuth, n: int = 5_000, repeat: int = 7) -> dict[str, float]:
    """Microseconds per request of building it and authorizing it, no network.

    Best of ``repeat`` runs (timeit's rule: the minimum is the least disturbed).
    """
    assert auth.tokens is not None
    header = f"Bearer {auth.tokens.access_token}"
    ok = httpx.Response(200)
    # The issuer's origin: a request anywhere else is not authorized at all.
    url = str(httpx.URL(auth.endpoint.url).copy_with(path="/api/me"))

    def with_auth() -> None:
        flow = auth.sync_auth_flow(httpx.Request("GET", url))
        next(flow)
        with contextlib.suppress(StopIteration):
            flow.send(ok)

    def static() -> None:
        httpx.Request("GET", url).headers["Authorization"] = header

    def best(fn: Callable[[], None]) -> float:
        runs = []
        for _ in range(repeat):
            start = time.perf_counter()
            for _ in range(n):
                fn()
            runs.append((time.perf_counter() - start) / n * 1e6)
        return round(min(runs), 2)

    return {"token_auth": best(with_auth), "static_header": best(static)}


# -- 2. refresh calls under concurrency ----------------------------------------


def _together(n: int, call: Callable[[], int]) -> list[Any]:
    go, lock, out = threading.Event(), threading.Lock(), []

    def worker() -> None:
        go.wait(60)
        try:
            r: Any = call()
        except Exception as exc:
            r = type(exc).__name__
        with lock:
            out.append(r)

    threads = [threading.Thread(target=worker) for _ in range(n)]
    for t in threads:
        t.start()
    go.set()
    for t in threads:
        t.join(120)
    return out


def _together_async(n: int, call: Callable[[], Awaitable[int]]) -> list[Any]:
    async def main() -> list[Any]:
        start = asyncio.Event()

        async def one() -> Any:
            await start.wait()
            try:
                return await call()
            except Exception as exc:
                return type(exc).__name__

        tasks = [asyncio.create_task(one()) for _ in range(n)]
        await asyncio.sleep(0)
        start.set()
        return list(await asyncio.gather(*tasks))

    return asyncio.run(main())


def _expired(body: dict[str, Any]) -> dict[str, Any]:
    return {**body, "expires_at": int(time.time()) - 1}


def _silentauth_sync(base: str, n: int) -> list[Any]:
    store = MemoryTokenStore(TokenSet.from_response(_grant(base), time.time() - 10_000))
    auth = TokenAuth(token_url=f"{base}/auth/token", store=store)
    with httpx.Client(auth=auth, limits=httpx.Limits(max_connections=16), timeout=120) as c:
        return _together(n, lambda: c.get(f"{base}/api/me").status_code)


def _silentauth_async(base: str, n: int) -> list[Any]:
    store = MemoryTokenStore(TokenSet.from_response(_grant(base), time.time() - 10_000))
    auth = TokenAuth(token_url=f"{base}/auth/token", store=store)
    holder: dict[str, httpx.AsyncClient] = {}

    async def call() -> int:
        c = holder.get("c") or holder.setdefault(
            "c", httpx.AsyncClient(auth=auth, limits=httpx.Limits(max_connections=8), timeout=120)
        )
        return (await c.get(f"{base}/api/me")).status_code

    return _together_async(n, call)


def _authlib_requests(base: str, n: int) -> list[Any]:
    from authlib.integrations.requests_client import OAuth2Session  # type: ignore[import-untyped]

    s = OAuth2Session(client_id="bench", token=_expired(_grant(base)), token_endpoint=f"{base}/auth/token")
    return _together(n, lambda: s.get(f"{base}/api/me", timeout=120).status_code)


def _authlib_httpx_sync(base: str, n: int) -> list[Any]:
    from authlib.integrations.httpx_client import OAuth2Client  # type: ignore[import-untyped]

    c = OAuth2Client(client_id="bench", token=_expired(_grant(base)), token_endpoint=f"{base}/auth/token", timeout=120)
    return _together(n, lambda: c.get(f"{base}/api/me").status_code)


def _authlib_httpx_async(base: str, n: int) -> list[Any]:
    from authlib.integrations.httpx_client import AsyncOAuth2Client

    token = _expired(_grant(base))
    holder: dict[str, Any] = {}

    async def call() -> int:
        c = holder.get("c") or holder.setdefault(
            "c", AsyncOAuth2Client(client_id="bench", token=token, token_endpoint=f"{base}/auth/token", timeout=120)
        )
        return int((await c.get(f"{base}/api/me")).status_code)

    return _together_async(n, call)


def _requests_oauthlib(base: str, n: int) -> list[Any]:
    from requests_oauthlib import OAuth2Session  # type: ignore[import-untyped]

    s = OAuth2Session(
        client_id="bench",
        token=_expired(_grant(base)),
        auto_refresh_url=f"{base}/auth/token",
        token_updater=lambda token: None,
    )
    return _together(n, lambda: int(s.get(f"{base}/api/me", timeout=120).status_code))


def _httpx_auth(base: str, n: int) -> list[Any]:
    import httpx_auth

    auth = httpx_auth.OAuth2ResourceOwnerPasswordCredentials(f"{base}/auth/token", USERNAME, PASSWORD)
    with httpx.Client(auth=auth, timeout=120) as c:
        c.get(f"{base}/api/me").raise_for_status()  # one password grant, cached
        cache = httpx_auth.OAuth2.token_cache
        bearer, _, refresh = cache.tokens[auth.state]
        cache.tokens[auth.state] = (bearer, time.time() - 60, refresh)  # expired
        before = _metrics(base)
        out = _together(n, lambda: c.get(f"{base}/api/me").status_code)
    out.append(before)  # the grant above is not the callers' doing
    return out


# name -> (module that must be importable, scenario, most callers worth running)
PEERS: dict[str, tuple[str | None, Callable[[str, int], list[Any]], int]] = {
    "silentauth TokenAuth (httpx.Client, threads)": (None, _silentauth_sync, 10_000),
    "silentauth TokenAuth (httpx.AsyncClient, tasks)": (None, _silentauth_async, 10_000),
    "Authlib OAuth2Session (requests, threads)": ("authlib", _authlib_requests, 10_000),
    "Authlib OAuth2Client (httpx, threads)": ("authlib", _authlib_httpx_sync, 10_000),
    "Authlib AsyncOAuth2Client (httpx, tasks)": ("authlib", _authlib_httpx_async, 10_000),
    "requests-oauthlib OAuth2Session (threads)": ("requests_oauthlib", _requests_oauthlib, 10_000),
    # Every waiter makes a new, serialized password grant (Argon2id, ~0.2 s
    # each): 500 callers take ~2 minutes and show nothing 50 do not.
    "httpx-auth OAuth2ResourceOwnerPasswordCredentials (threads)": ("httpx_auth", _httpx_auth, 100),
}


def _measure(base: str, scenario: Callable[[str, int], list[Any]], n: int) -> dict[str, Any]:
    before = _metrics(base)
    started = time.perf_counter()
    out = scenario(base, n)
    seconds = time.perf_counter() - started
    if out and isinstance(out[-1], dict):
        before = out.pop()
    after = _metrics(base)
    delta = {k: int(after.get(k, 0) - before.get(k, 0)) for k in (*OUTCOMES, "password_grants")}
    return {
        "refresh_calls": sum(delta[o] for o in OUTCOMES),
        "password_grants": delta["password_grants"],
        "outcomes": {o: delta[o] for o in OUTCOMES if delta[o]},
        "errors": sum(1 for r in out if r != 200),
        "seconds": round(seconds, 2),
    }


def _refresh_counts(base: str, callers: tuple[int, ...]) -> dict[str, Any]:
    table: dict[str, Any] = {}
    # requests-oauthlib refuses http:// token URLs unless told (loopback only here).
    with _env("OAUTHLIB_INSECURE_TRANSPORT", "1"), warnings.catch_warnings():
        # Peers' deprecation notices (some install their own filters): run() prints nothing.
        warnings.simplefilter("ignore")
        warnings.showwarning = lambda *args, **kwargs: None
        for name, (module, scenario, most) in PEERS.items():
            if module is not None and importlib.util.find_spec(module) is None:
                table[name] = {"skipped": f"{module} is not installed"}
                continue
            row: dict[str, Any] = {}
            for n in callers:
                if n > most:
                    row[str(n)] = {"skipped": f"more than {most} callers takes too long with this peer"}
                    continue
                try:
                    row[str(n)] = _measure(base, scenario, n)
                except Exception as exc:
                    row[str(n)] = {"failed": f"{type(exc).__name__}: {exc}"[:300]}
            table[name] = row
    return table


@contextlib.contextmanager
def _env(name: str, value: str) -> Iterator[None]:
    old = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old


def run(seconds: float = 6.0, callers: tuple[int, ...] = (50, 500)) -> dict[str, Any]:
    """Both measurements against one freshly started token service."""
    started = time.perf_counter()
    with running(("silentauth",)) as stacks, _pinned(LOADGEN_CPU):
        base = f"http://127.0.0.1:{stacks['silentauth'].port}"
        overhead = _overhead(base, seconds)
        refresh = _refresh_counts(base, callers)
    return {
        "name": "client_overhead",
        "target_overhead": TARGET_OVERHEAD,
        "overhead": overhead,
        "refresh_calls": refresh,
        "callers": list(callers),
        "seconds": round(time.perf_counter() - started, 1),
    }
