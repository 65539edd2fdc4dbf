"""TokenAuth recovers from refresh answers lost after the server committed the rotation.

Through a real TCP proxy (:mod:`tests.client.lossy_proxy`) in front of the real
token service: the proxy closes the client's connection when the server's answer
arrives. The client retries the same refresh token with the same Idempotency-Key,
at once and after a sleep past ``REUSE_GRACE``, also from a new process reading
the same token file, and is never logged out.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from silentauth.client import FileTokenStore, TokenAuth
from silentauth.clock import FakeClock
from tests.client.conftest import refresh_total
from tests.client.lossy_proxy import LossyProxy
from tests.conftest import LiveServer

ACCESS_TTL = 900
GRACE = 10.0


@pytest.fixture
def live(live_server_factory: Callable[..., LiveServer], shared_clock: FakeClock) -> LiveServer:
    return live_server_factory(clock=shared_clock, reuse_grace=GRACE)


@pytest.fixture
def proxy(live: LiveServer) -> Iterator[LossyProxy]:
    p = LossyProxy(live.url)
    yield p
    p.close()


def _revoked(live: LiveServer) -> float:
    from tests.conftest import metric_value

    return metric_value(httpx.get(f"{live.url}/metrics").text, "silentauth_sessions_revoked_total", reason="reuse")


def _me(auth: TokenAuth, live: LiveServer) -> httpx.Response:
    with httpx.Client(auth=auth) as client:
        return client.get(f"{live.url}/api/me")


def test_a_lost_answer_is_retried_at_once_with_the_same_key(
    live: LiveServer, proxy: LossyProxy, shared_clock: FakeClock
) -> None:
    auth = TokenAuth(token_url=f"{proxy.url}/auth/token", allowed_origins=[live.url], clock=shared_clock)
    auth.login("alice", "secret")
    proxy.drop = 1
    shared_clock.advance(ACCESS_TTL + 1)  # expired: the refresh must succeed for the request to
    assert _me(auth, live).status_code == 200
    assert proxy.dropped == 1
    outcomes = refresh_total(live)
    assert outcomes["rotated"] == 1 and outcomes["retried"] == 1
    assert auth.tokens is not None and auth.tokens.pending_key is None  # cleared by the new grant


def test_every_answer_lost_then_a_sleep_past_the_grace_window_keeps_the_session(
    live: LiveServer, proxy: LossyProxy, shared_clock: FakeClock
) -> None:
    auth = TokenAuth(token_url=f"{proxy.url}/auth/token", allowed_origins=[live.url], clock=shared_clock)
    auth.login("alice", "secret")
    proxy.drop = 10  # the first try and both retries are lost: a train tunnel
    shared_clock.advance(ACCESS_TTL - 30)  # due, still valid: the request goes on with it
    assert _me(auth, live).status_code == 200
    assert proxy.dropped == 3  # one try and two retries, then the cooldown: no loop
    proxy.drop = 0
    shared_clock.advance(8 * 3600)  # the lid closes for the night, far past REUSE_GRACE
    assert _me(auth, live).status_code == 200
    assert refresh_total(live)["rotated"] == 1
    assert _revoked(live) == 0
    # The re-delivered successor is the live token: the next refresh rotates normally.
    shared_clock.advance(ACCESS_TTL + 1)
    assert _me(auth, live).status_code == 200
    assert refresh_total(live)["rotated"] == 2


def test_a_process_killed_mid_refresh_resumes_with_the_pending_key(
    live: LiveServer, proxy: LossyProxy, shared_clock: FakeClock, tmp_path: Path
) -> None:
    path = tmp_path / "tokens.json"
    first = TokenAuth(token_url=f"{proxy.url}/auth/token", allowed_origins=[live.url], clock=shared_clock, store=FileTokenStore(path))
    first.login("alice", "secret")
    proxy.drop = 10
    shared_clock.advance(ACCESS_TTL - 30)
    assert _me(first, live).status_code == 200
    pending = json.loads(path.read_text())["pending_key"]
    assert pending and len(pending) >= 22  # on disk before the answer (never) came
    del first  # the app is killed; it never heard the answer
    proxy.drop = 0
    shared_clock.advance(3 * 86400)  # started again days later (within the idle lifetime)
    second = TokenAuth(token_url=f"{proxy.url}/auth/token", allowed_origins=[live.url], clock=shared_clock, store=FileTokenStore(path))
    assert _me(second, live).status_code == 200
    assert _revoked(live) == 0 and refresh_total(live)["retried"] >= 1
    assert "pending_key" not in path.read_text() or json.loads(path.read_text())["pending_key"] is None


@pytest.mark.anyio
async def test_async_client_retries_a_lost_answer_with_its_key(
    live_server_factory: Callable[..., LiveServer], shared_clock: FakeClock
) -> None:
    live = live_server_factory(clock=shared_clock, reuse_grace=GRACE)
    proxy = LossyProxy(live.url)
    try:
        auth = TokenAuth(token_url=f"{proxy.url}/auth/token", allowed_origins=[live.url], clock=shared_clock)
        await auth.alogin("alice", "secret")
        proxy.drop = 3
        shared_clock.advance(ACCESS_TTL - 30)
        async with httpx.AsyncClient(auth=auth) as client:
            assert (await client.get(f"{live.url}/api/me")).status_code == 200
            shared_clock.advance(3600)
            assert (await client.get(f"{live.url}/api/me")).status_code == 200
        assert refresh_total(live)["rotated"] == 1 and _revoked(live) == 0
    finally:
        proxy.close()
