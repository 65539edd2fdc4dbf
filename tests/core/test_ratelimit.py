"""Fixed-window counting: what a client is told, and what a key spray cannot erase."""

from __future__ import annotations

import pytest

from silentauth.core.ratelimit import LocalCounters, MemoryCounter, RateLimiter
from silentauth.errors import RateLimited
from silentauth.settings import Rate

pytestmark = pytest.mark.anyio

MINUTE = Rate(limit=2, window=60)


def test_counts_restart_when_the_window_ends() -> None:
    counter = MemoryCounter()
    assert counter.hit("k", 60, 0.0) == 1
    assert counter.hit("k", 60, 59.9) == 2
    assert counter.peek("k", 60, 59.9) == 2
    assert counter.peek("k", 60, 60.0) == 0
    assert counter.hit("k", 60, 60.0) == 1


def test_a_full_table_drops_ended_windows_before_live_counts() -> None:
    # An attacker who can choose keys (user names) must not reset the login
    # counter of the account being guessed while ended windows can make room.
    counter = MemoryCounter(max_keys=10)
    counter.hit("victim", 60, 0.0)  # first in the table, then re-counted in window 1
    for i in range(9):
        counter.hit(f"old-{i}", 60, 0.0)
    for _ in range(3):
        counter.hit("victim", 60, 60.0)
    for i in range(9):  # the first evicts the nine ended windows, the rest fit
        counter.hit(f"spray-{i}", 60, 61.0)
    assert counter.peek("victim", 60, 61.0) == 3


def test_memory_stays_bounded_under_a_spray_of_keys() -> None:
    counter = MemoryCounter(max_keys=10)
    for i in range(200):
        counter.hit(f"user-{i}", 60, 5.0)
        # The table is the memory an unauthenticated client can make us hold.
        assert len(counter._counts) <= 10


def test_a_full_table_of_live_counts_drops_the_smallest_first() -> None:
    counter = MemoryCounter(max_keys=10)
    for _ in range(3):
        counter.hit("victim", 60, 0.0)  # the oldest entry, and the most counted
    for i in range(100):  # sprayed keys counted twice each: still below the victim
        counter.hit(f"spray-{i}", 60, 1.0)
        counter.hit(f"spray-{i}", 60, 1.0)
    assert counter.peek("victim", 60, 1.0) == 3
    assert len(counter._counts) <= 10


def test_a_key_seen_after_an_eviction_starts_from_its_own_count() -> None:
    # Inheriting the evicted count (Space-Saving) would let a flood lock new keys out.
    counter = MemoryCounter(max_keys=10)
    for i in range(10):
        for _ in range(5):
            counter.hit(f"busy-{i}", 60, 0.0)
    assert counter.hit("newcomer", 60, 0.0) == 1


async def test_retry_after_is_the_rest_of_the_window() -> None:
    limiter = RateLimiter(LocalCounters(), MINUTE)
    for now in (0.0, 0.5):
        await limiter.record("k", now)
    with pytest.raises(RateLimited) as early:
        await limiter.check("k", 0.5)
    assert early.value.headers()["Retry-After"] == "60"  # ceil(59.5)
    with pytest.raises(RateLimited) as late:
        await limiter.check("k", 59.5)
    assert late.value.headers()["Retry-After"] == "1"
    await limiter.check("k", 60.0)  # the next window admits again


async def test_attempts_in_flight_count_against_the_limit() -> None:
    limiter = RateLimiter(LocalCounters(), MINUTE)
    async with limiter.attempt("k", 1.0), limiter.attempt("k", 1.0):
        with pytest.raises(RateLimited) as third:
            async with limiter.attempt("k", 1.0):
                pass  # pragma: no cover - refused before the body runs
        assert third.value.headers()["Retry-After"] == "59"
    # Both finished without being recorded: the window is free again.
    async with limiter.attempt("k", 1.0):
        pass
