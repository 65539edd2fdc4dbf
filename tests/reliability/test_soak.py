"""Soak: 200 users on the Python client against ``silentauth serve`` with 5 s access tokens.

Each user keeps calling ``/api/me`` through :class:`silentauth.client.TokenAuth`
for ``SILENTAUTH_SOAK_SECONDS`` (default 20 s in CI, to keep within the
suite's time budget; ``make soak`` sets 1800).
Measured and required:

- zero 401s and zero 5xx visible to application code, no client exception;
- exactly one refresh per user per expiry: every refresh a client sends is one
  ``rotated`` on the server's ``/metrics`` (no ``grace``, ``reuse_detected``,
  ``invalid`` or ``expired``), and each user refreshed as often as its tokens
  expired — never twice for one expiry, never skipping one;
- the server's memory stays flat (RSS at start and end are printed).
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from silentauth.client import TokenAuth
from tests.conftest import make_settings, seed_users
from tests.reliability.serve import SECRET, ServeProcess

USERS = 200
ACCESS_TTL = 5
MARGIN = 1.0
INTERVAL = 1.0  # seconds between one user's calls
SECONDS = float(os.environ.get("SILENTAUTH_SOAK_SECONDS", "20"))


class CountingTransport(httpx.AsyncBaseTransport):
    """The client's own token-endpoint transport, counting the grants it sends."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.grants: Counter[str] = Counter()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = request.content.decode()
        self.grants["refresh" if "grant_type=refresh_token" in body else "other"] += 1
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


class Run:
    """What every simulated user shares: the start signal, the deadline, the tallies."""

    def __init__(self) -> None:
        self.start = asyncio.Event()
        self.until = 0.0
        self.seen: Counter[int] = Counter()
        self.failures: list[str] = []


async def user(url: str, name: str, run: Run) -> int:
    """One user: log in, wait for the start, call the API until the deadline.

    Returns the refreshes its client sent (counted on its token transport).
    """
    transport = CountingTransport()
    auth = TokenAuth(f"{url}/auth/token", refresh_margin=MARGIN, jitter=0.0, async_transport=transport)
    await auth.alogin(name, "pw")
    await run.start.wait()
    rng = random.Random(name)
    async with httpx.AsyncClient(base_url=url, auth=auth, timeout=30) as http:
        await asyncio.sleep(rng.uniform(0, INTERVAL))
        while time.monotonic() < run.until:
            try:
                r = await http.get("/api/me")
                run.seen[r.status_code] += 1
                if r.status_code != 200:
                    run.failures.append(f"{name}: {r.status_code} {r.text[:200]}")
            except Exception as exc:  # SessionExpired, RefreshFailed, transport errors
                run.failures.append(f"{name}: {type(exc).__name__}: {exc}")
            await asyncio.sleep(INTERVAL)
    await transport.aclose()
    return transport.grants["refresh"]


@pytest.mark.slow
def test_soak_200_users_5s_tokens_no_401_no_5xx_one_refresh_per_expiry_flat_memory(tmp_path: Path) -> None:
    db = tmp_path / "soak.db"
    names = [f"soak{i:03d}" for i in range(USERS)]
    seed_users(make_settings(tmp_path, database_url=f"sqlite:///{db}", secret_key=SECRET), dict.fromkeys(names, "pw"))
    server = ServeProcess(
        db, tmp_path / "serve.log", access_ttl=ACCESS_TTL, renew_within=0, ttl_jitter=0, rate_limit_login="off"
    )
    server.start()
    try:
        run = Run()
        rss: dict[str, float] = {}

        async def soak() -> list[int]:
            users = [asyncio.create_task(user(server.url, n, run)) for n in names]
            while server.metric("silentauth_login_total", outcome="ok") < USERS:
                await asyncio.sleep(0.2)
            rss["start"] = server.rss_mb()
            run.until = time.monotonic() + SECONDS
            run.start.set()
            await asyncio.sleep(SECONDS / 3)
            rss["warm"] = server.rss_mb()  # caches and pools have grown to their working size
            return await asyncio.gather(*users)

        started = time.monotonic()
        refreshes = asyncio.run(soak())
        elapsed = time.monotonic() - started
        rss["end"] = server.rss_mb()
        outcomes = {
            o: server.metric("silentauth_refresh_total", outcome=o)
            for o in ("rotated", "grace", "reuse_detected", "invalid", "expired")
        }
        print(
            f"\nsoak {SECONDS:.0f} s ({elapsed:.0f} s wall), {USERS} users, access_ttl={ACCESS_TTL}: "
            f"{sum(run.seen.values())} calls {dict(run.seen)}, refreshes {outcomes}, "
            f"per user min/max {min(refreshes)}/{max(refreshes)}, "
            f"server RSS start {rss['start']:.1f} MiB, warm {rss['warm']:.1f} MiB, end {rss['end']:.1f} MiB"
        )
        assert not run.failures, run.failures[:5]
        assert set(run.seen) == {200}
        # Every refresh a client sent rotated exactly once on the server.
        assert outcomes["rotated"] == sum(refreshes)
        assert outcomes["grace"] == outcomes["reuse_detected"] == outcomes["invalid"] == outcomes["expired"] == 0
        # One refresh per expiry: a token is refreshed at the earliest MARGIN + one
        # call interval before it expires, at the latest when it has expired.
        lo = int(SECONDS // (ACCESS_TTL + INTERVAL + 1)) - 1  # + a slow call on a busy box
        hi = int(elapsed // (ACCESS_TTL - MARGIN - INTERVAL)) + 1
        assert all(lo <= n <= hi for n in refreshes), (lo, hi, sorted(refreshes)[:3], sorted(refreshes)[-3:])
        # Flat once warm: no growth with the number of requests served.
        assert rss["end"] - rss["warm"] < 25, rss
    finally:
        server.stop()
