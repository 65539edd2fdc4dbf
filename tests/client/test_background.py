"""Background refresh wakes when the token is due, stops when told, ends with the session.

The refresher's thread runs against the real token service; its sleeps are
replaced by a ``wait`` that moves the shared fake clock by the requested
delay, so the loop runs in virtual time and each wake happens at a known
instant instead of "some time within a real sleep".
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import httpx
import pytest

from silentauth.client import TokenAuth, TokenSet
from silentauth.client.background import BackgroundRefresh
from silentauth.clock import FakeClock
from tests.client.conftest import refresh_total
from tests.conftest import LiveServer

MARGIN = 60.0


class VirtualTime:
    """A ``wait`` for :class:`BackgroundRefresh`: advances the clock, stops after ``wakes``."""

    def __init__(self, clock: FakeClock, wakes: int) -> None:
        self.clock = clock
        self.start = clock()
        self.left = wakes
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> bool:
        if self.left == 0:
            return True  # stop
        self.left -= 1
        self.delays.append(seconds)
        self.clock.advance(seconds)
        return False

    def now(self) -> float:
        """Virtual seconds since the refresher started."""
        return self.clock() - self.start


def run_refresher(auth: TokenAuth, interval: float, wait: VirtualTime) -> list[tuple[float, bool]]:
    """Run one refresher thread to its end; ``(virtual time, tokens replaced?)`` per wake."""
    log: list[tuple[float, bool]] = []

    def refresh() -> TokenSet:
        before = auth.tokens
        try:
            after = auth.ensure_fresh()
        finally:
            log.append((wait.now(), auth.tokens is not before))
        return after

    refresher = BackgroundRefresh(auth._coord, refresh, interval, wait)
    refresher.start()
    refresher._thread.join(30)
    assert not refresher.alive
    return log


@pytest.fixture
def strict(live_server_factory: Callable[..., LiveServer], shared_clock: FakeClock) -> LiveServer:
    return live_server_factory(clock=shared_clock, reuse_grace=0)


def login(live: LiveServer, clock: FakeClock, **kwargs: object) -> TokenAuth:
    auth = TokenAuth(token_url=f"{live.url}/auth/token", clock=clock, refresh_margin=MARGIN, jitter=0, **kwargs)  # type: ignore[arg-type]
    auth.login("alice", "secret")
    return auth


def due_in(tokens: TokenSet | None, clock: FakeClock) -> float:
    """Seconds until ``refresh_margin`` before expiry (the margin is well under lifetime / 2)."""
    assert tokens is not None
    return tokens.expires_at - MARGIN - clock()


def test_the_refresher_sleeps_until_the_token_is_due_not_a_fixed_interval(
    strict: LiveServer, shared_clock: FakeClock
) -> None:
    auth = login(strict, shared_clock)
    first_due = due_in(auth.tokens, shared_clock)
    wait = VirtualTime(shared_clock, wakes=2)
    log = run_refresher(auth, interval=24 * 3600, wait=wait)
    # Each wake is exactly when the token in hand becomes due, and refreshes it.
    assert [t for t, _ in log] == pytest.approx([first_due, 2 * first_due])
    assert [refreshed for _, refreshed in log] == [True, True]
    assert refresh_total(strict)["rotated"] == 2


def test_the_interval_caps_each_sleep_and_early_wakes_do_not_refresh(
    strict: LiveServer, shared_clock: FakeClock
) -> None:
    auth = login(strict, shared_clock)
    due = due_in(auth.tokens, shared_clock)
    interval = 100.0
    early = int(due // interval)  # wakes before the token is due
    wait = VirtualTime(shared_clock, wakes=early + 1)
    log = run_refresher(auth, interval=interval, wait=wait)
    assert wait.delays[:early] == [interval] * early
    assert [t for t, _ in log] == pytest.approx([interval * (i + 1) for i in range(early)] + [due])
    assert [refreshed for _, refreshed in log] == [False] * early + [True]
    assert refresh_total(strict)["rotated"] == 1


def test_before_login_the_refresher_only_waits(strict: LiveServer, shared_clock: FakeClock) -> None:
    auth = TokenAuth(token_url=f"{strict.url}/auth/token", clock=shared_clock)
    wait = VirtualTime(shared_clock, wakes=3)
    assert run_refresher(auth, interval=30, wait=wait) == []  # never tried to refresh
    assert wait.delays == [30, 30, 30]


def test_the_refresher_ends_by_itself_when_the_session_is_dead(
    live_server_factory: Callable[..., LiveServer], shared_clock: FakeClock
) -> None:
    live = live_server_factory(clock=shared_clock)
    calls: list[int] = []
    auth = login(live, shared_clock, on_session_expired=lambda: calls.append(1))
    due = due_in(auth.tokens, shared_clock)
    assert auth.tokens is not None
    httpx.post(f"{live.url}/auth/revoke", data={"token": auth.tokens.refresh_token})
    wait = VirtualTime(shared_clock, wakes=5)
    log = run_refresher(auth, interval=24 * 3600, wait=wait)
    # It woke when due, found the session dead, and did not wait again.
    assert wait.delays == [pytest.approx(due)] and log == [(pytest.approx(due), True)]
    assert calls == [1] and auth.tokens is None
    auth.close()


def test_start_is_idempotent_and_stop_interrupts_a_long_sleep(
    strict: LiveServer, shared_clock: FakeClock
) -> None:
    auth = login(strict, shared_clock)
    auth.start_background_refresh(interval=3600)
    auth.start_background_refresh(interval=3600)  # still one thread
    threads = [t for t in threading.enumerate() if t.name == "silentauth-refresh"]
    assert len(threads) == 1
    started = time.monotonic()
    auth.stop_background_refresh(timeout=10)
    assert time.monotonic() - started < 5  # woken by stop, not by the hour-long sleep ending
    assert not threads[0].is_alive()
    auth.close()
