"""Many callers at once: one refresh, one failure, shared by everybody."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from silentauth.client import (
    FileTokenStore,
    MemoryTokenStore,
    RefreshFailed,
    SessionExpired,
    TokenAuth,
    TokenSet,
)
from silentauth.clock import FakeClock
from tests.client.conftest import CountingTransport, refresh_total
from tests.conftest import LiveServer, free_port

ACCESS_TTL = 900
# Small pools: httpcore gets slow with hundreds of queued requests per pool,
# and these numbers keep 1000 callers at ~3 s on two cores.
SYNC_POOL = httpx.Limits(max_connections=16)
ASYNC_POOL = httpx.Limits(max_connections=8)
TIMEOUT = httpx.Timeout(60.0)


def async_getter(auth: TokenAuth, url: str) -> Callable[[], Any]:
    """A coroutine function GETting ``url`` through one AsyncClient made in the loop."""
    holder: dict[str, httpx.AsyncClient] = {}

    async def get() -> int:
        client = holder.get("c")
        if client is None:
            client = holder["c"] = httpx.AsyncClient(auth=auth, limits=ASYNC_POOL, timeout=TIMEOUT)
        return (await client.get(url)).status_code

    return get


def run_together(
    n_threads: int, n_tasks: int, sync_call: Callable[[], Any], async_call: Callable[[], Any]
) -> list[Any]:
    """Release ``n_threads`` threads and ``n_tasks`` asyncio tasks at one instant.

    Each caller's result (or the exception it raised) is returned.
    """
    go = threading.Event()
    results: list[Any] = []
    lock = threading.Lock()

    def worker() -> None:
        go.wait(30)
        try:
            outcome: Any = sync_call()
        except Exception as exc:
            outcome = exc
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=worker) for _ in range(n_threads)]
    for t in threads:
        t.start()

    async def main() -> None:
        start = asyncio.Event()

        async def task() -> None:
            await start.wait()
            try:
                outcome: Any = await async_call()
            except Exception as exc:
                outcome = exc
            with lock:
                results.append(outcome)

        tasks = [asyncio.create_task(task()) for _ in range(n_tasks)]
        await asyncio.sleep(0)
        go.set()
        start.set()
        await asyncio.gather(*tasks)

    asyncio.run(main())
    for t in threads:
        t.join(60)
    assert len(results) == n_threads + n_tasks
    return results


def test_500_threads_and_500_tasks_after_expiry_cause_exactly_one_refresh(
    live_server_factory: Callable[..., LiveServer], shared_clock: FakeClock
) -> None:
    live = live_server_factory(clock=shared_clock, reuse_grace=0)
    auth = TokenAuth(token_url=f"{live.url}/auth/token", clock=shared_clock)
    auth.login("alice", "secret")
    shared_clock.advance(ACCESS_TTL + 1)  # just after expiry, for client and server
    url = f"{live.url}/api/me"
    sync_client = httpx.Client(auth=auth, limits=SYNC_POOL, timeout=TIMEOUT)
    started = time.monotonic()
    try:
        results = run_together(500, 500, lambda: sync_client.get(url).status_code, async_getter(auth, url))
    finally:
        sync_client.close()
    errors = [r for r in results if r != 200]
    assert errors == []
    outcomes = refresh_total(live)
    assert outcomes["rotated"] == 1
    assert outcomes["grace"] == outcomes["reuse_detected"] == outcomes["invalid"] == 0
    assert time.monotonic() - started < 45


def test_threads_and_tasks_sharing_a_file_store_refresh_once(
    live_server_factory: Callable[..., LiveServer], shared_clock: FakeClock, tmp_path: Path
) -> None:
    # Two auth objects on one file, as two libraries in one app would have.
    live = live_server_factory(clock=shared_clock, reuse_grace=0)
    url = f"{live.url}/api/me"
    first = TokenAuth(token_url=f"{live.url}/auth/token", store=FileTokenStore(tmp_path / "t.json"), clock=shared_clock)
    first.login("alice", "secret")
    second = TokenAuth(token_url=f"{live.url}/auth/token", store=FileTokenStore(tmp_path / "t.json"), clock=shared_clock)
    shared_clock.advance(ACCESS_TTL + 1)
    with httpx.Client(auth=first, limits=SYNC_POOL, timeout=TIMEOUT) as client:
        results = run_together(100, 100, lambda: client.get(url).status_code, async_getter(second, url))
    assert [r for r in results if r != 200] == []
    outcomes = refresh_total(live)
    assert outcomes["rotated"] == 1 and outcomes["grace"] == outcomes["reuse_detected"] == 0
    assert first.tokens == second.tokens


@pytest.mark.parametrize("expired_locally", [True, False], ids=["proactive", "after-401"])
def test_dead_refresh_token_fails_all_200_callers_once(
    live_server_factory: Callable[..., LiveServer], shared_clock: FakeClock, expired_locally: bool
) -> None:
    live = live_server_factory(clock=shared_clock)
    counter = CountingTransport()
    calls: list[float] = []
    auth = TokenAuth(
        token_url=f"{live.url}/auth/token",
        clock=shared_clock,
        transport=counter,
        async_transport=counter,
        on_session_expired=lambda: calls.append(time.monotonic()),
    )
    auth.login("alice", "secret")
    # Kill the session server-side: its refresh token is dead from now on.
    with httpx.Client(auth=auth) as c:
        assert c.post(f"{live.url}/auth/logout").status_code == 204
    if expired_locally:
        shared_clock.advance(ACCESS_TTL + 1)
    url = f"{live.url}/api/me"
    sync_client = httpx.Client(auth=auth, limits=SYNC_POOL, timeout=TIMEOUT)
    try:
        results = run_together(100, 100, lambda: sync_client.get(url).status_code, async_getter(auth, url))
        with pytest.raises(SessionExpired):  # and later requests too, with no new attempt
            sync_client.get(url)
    finally:
        sync_client.close()
    assert all(isinstance(r, SessionExpired) for r in results), {type(r) for r in results}
    assert len(calls) == 1
    assert counter.calls["refresh"] == 1
    assert refresh_total(live)["invalid"] == 1
    assert auth.tokens is None


def test_token_server_down_gives_connection_errors_without_a_refresh_storm(
    live_server: LiveServer, shared_clock: FakeClock
) -> None:
    # A real grant from the live server, then a token URL where nothing listens.
    grant = httpx.post(
        f"{live_server.url}/auth/token",
        data={"grant_type": "password", "username": "alice", "password": "secret"},
    ).json()
    store = MemoryTokenStore(TokenSet.from_response(grant, shared_clock()))
    counter = CountingTransport()
    expired: list[int] = []
    auth = TokenAuth(
        token_url=f"http://127.0.0.1:{free_port()}/auth/token",
        allowed_origins=[live_server.url],  # the API is not where the (dead) token endpoint is
        store=store,
        clock=shared_clock,
        transport=counter,
        async_transport=counter,
        on_session_expired=lambda: expired.append(1),
    )
    url = f"{live_server.url}/api/me"
    with httpx.Client(auth=auth, limits=SYNC_POOL, timeout=TIMEOUT) as client:
        # Due but still valid: the failed proactive refresh is not the caller's problem.
        shared_clock.advance(ACCESS_TTL - 20)
        assert client.get(url).status_code == 200
        assert counter.calls["refresh"] == 1
        # Expired, cooldown over: one new attempt for 200 callers, who all get the error.
        shared_clock.advance(60)
        results = run_together(100, 100, lambda: client.get(url).status_code, async_getter(auth, url))
        assert all(isinstance(r, RefreshFailed) for r in results), {type(r) for r in results}
        assert any(isinstance(r.__cause__, httpx.ConnectError) for r in results)
        assert counter.calls["refresh"] == 2
        # Within the (now longer) cooldown nobody retries; after it, exactly once.
        shared_clock.advance(1.5)
        for _ in range(20):
            with pytest.raises(RefreshFailed):
                client.get(url)
        assert counter.calls["refresh"] == 2
        shared_clock.advance(1.5)
        for _ in range(20):
            with pytest.raises(RefreshFailed):
                client.get(url)
        assert counter.calls["refresh"] == 3
    assert expired == [] and auth.tokens is not None  # tokens are kept
