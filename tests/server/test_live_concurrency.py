"""Real HTTP on loopback: racing refreshes of one token converge on one lineage."""

from __future__ import annotations

import asyncio
import sqlite3
from collections import Counter

import httpx
import pytest

from tests.conftest import LiveServer

pytestmark = pytest.mark.anyio


async def test_200_concurrent_refreshes_of_one_token_make_one_lineage(live_server: LiveServer) -> None:
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    async with httpx.AsyncClient(base_url=live_server.url, limits=limits, timeout=30) as client:
        r = await client.post("/auth/token", data={"grant_type": "password", "username": "alice", "password": "secret"})
        token = r.json()["refresh_token"]
        go = asyncio.Event()

        async def refresh() -> httpx.Response:
            await go.wait()
            return await client.post("/auth/token", data={"grant_type": "refresh_token", "refresh_token": token})

        tasks = [asyncio.create_task(refresh()) for _ in range(200)]
        await asyncio.sleep(0.05)
        go.set()
        responses = await asyncio.gather(*tasks)
    assert Counter(r.status_code for r in responses) == {200: 200}
    successors = {r.json()["refresh_token"] for r in responses}
    assert len(successors) == 1, "the session forked into several lineages"
    assert live_server.metric("silentauth_refresh_total", outcome="rotated") == 1
    assert live_server.metric("silentauth_refresh_total", outcome="grace") == 199
    # Count live lineages in the store itself: one session row, counter moved by one.
    path = live_server.runtime.settings.database_url.partition("///")[2]
    rows = sqlite3.connect(path).execute("SELECT counter, revoked_at FROM sessions").fetchall()
    assert rows == [(1, None)]
    # And the one successor works.
    async with httpx.AsyncClient(base_url=live_server.url) as client:
        nxt = await client.post(
            "/auth/token", data={"grant_type": "refresh_token", "refresh_token": successors.pop()}
        )
        assert nxt.status_code == 200


async def test_refreshes_of_100_sessions_over_http_rotate_once_each_in_shared_batches(
    live_server: LiveServer,
) -> None:
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
    async with httpx.AsyncClient(base_url=live_server.url, limits=limits, timeout=30) as client:
        login = {"grant_type": "password", "username": "alice", "password": "secret"}
        tokens = [(await client.post("/auth/token", data=login)).json()["refresh_token"] for _ in range(100)]
        go = asyncio.Event()

        async def refresh(token: str) -> httpx.Response:
            await go.wait()
            return await client.post("/auth/token", data={"grant_type": "refresh_token", "refresh_token": token})

        tasks = [asyncio.create_task(refresh(t)) for t in tokens]
        await asyncio.sleep(0.05)
        go.set()
        responses = await asyncio.gather(*tasks)
    assert Counter(r.status_code for r in responses) == {200: 100}
    assert live_server.metric("silentauth_refresh_total", outcome="rotated") == 100
    assert live_server.metric("silentauth_refresh_batch_size_sum") == 100
    batches = live_server.metric("silentauth_refresh_batch_size_count")
    assert batches < 100, f"no two refreshes shared a store transaction ({batches} batches)"
    path = live_server.runtime.settings.database_url.partition("///")[2]
    assert sqlite3.connect(path).execute("SELECT DISTINCT counter FROM sessions").fetchall() == [(1,)]


async def test_healthz_and_jwks_over_http(live_server: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=live_server.url) as client:
        assert (await client.get("/healthz")).status_code == 200
        keys = (await client.get("/.well-known/jwks.json")).json()["keys"]
        assert keys and all("d" not in k for k in keys)  # never the private part
        assert keys[0]["alg"] == "ES256" and keys[0]["kty"] == "EC"
