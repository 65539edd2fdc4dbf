"""Background refresh keeps an idle session fresh and stops cleanly."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from silentauth.client import TokenAuth
from silentauth.clock import FakeClock
from tests.client.conftest import refresh_total
from tests.conftest import LiveServer


def wait_for(condition: Callable[[], bool], seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def test_background_refresh_renews_an_idle_session_then_stops(
    live_server_factory: Callable[..., LiveServer], shared_clock: FakeClock
) -> None:
    live = live_server_factory(clock=shared_clock, reuse_grace=0)
    auth = TokenAuth(token_url=f"{live.url}/auth/token", clock=shared_clock)
    auth.login("alice", "secret")
    first = auth.tokens
    assert first is not None
    auth.start_background_refresh(interval=0.05)
    auth.start_background_refresh(interval=0.05)  # idempotent: still one thread
    assert sum(t.name == "silentauth-refresh" for t in threading.enumerate()) == 1
    time.sleep(0.2)
    assert refresh_total(live)["rotated"] == 0  # not due yet: nothing happens
    shared_clock.advance(900 - 30)  # due, and no request is being made
    assert wait_for(lambda: auth.tokens is not None and auth.tokens.access_token != first.access_token)
    assert refresh_total(live)["rotated"] == 1
    auth.stop_background_refresh()
    assert not any(t.name == "silentauth-refresh" for t in threading.enumerate())
    shared_clock.advance(900)
    time.sleep(0.2)
    assert refresh_total(live)["rotated"] == 1  # stopped means stopped


def test_background_refresh_ends_by_itself_when_the_session_expires(
    live_server_factory: Callable[..., LiveServer], shared_clock: FakeClock
) -> None:
    live = live_server_factory(clock=shared_clock)
    calls: list[int] = []
    auth = TokenAuth(
        token_url=f"{live.url}/auth/token", clock=shared_clock, on_session_expired=lambda: calls.append(1)
    )
    auth.login("alice", "secret")
    assert auth.tokens is not None
    live_revoke = auth.tokens.refresh_token
    import httpx

    httpx.post(f"{live.url}/auth/revoke", data={"token": live_revoke})
    auth.start_background_refresh(interval=0.05)
    shared_clock.advance(900 - 30)
    assert wait_for(lambda: not any(t.name == "silentauth-refresh" for t in threading.enumerate()))
    assert calls == [1] and auth.tokens is None
    auth.close()
