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


def test_a_full_table_drops_a_tenth_ended_windows_then_the_least_counted_earliest() -> None:
    # 5 ended windows and 95 live keys fill a 100-key table. A new key makes room
    # for a tenth: the 5 ended windows, then the 5 least counted live keys, ties
    # going to the earliest counted (names run the other way, so neither the
    # name nor the (count, name) pair can stand in for that order).
    counter = MemoryCounter(max_keys=100)
    for i in range(5):
        counter.hit(f"ended-{i}", 60, 0.0)
    once = range(10, 18)  # the least counted live keys, in the order they were counted
    for j in range(95):
        for _ in range(1 if j in once else 2):
            counter.hit(f"live-{94 - j:02d}", 60, 60.0)
    # Ten newcomers: the first makes room for all ten, so no other key is dropped.
    for i in range(10):
        assert counter.hit(f"new-{i}", 60, 61.0) == 1
    kept = {j for j in range(95) if counter.peek(f"live-{94 - j:02d}", 60, 61.0)}
    assert kept == set(range(95)) - set(range(10, 15))
    assert all(counter.peek(f"new-{i}", 60, 61.0) == 1 for i in range(10))


def test_a_table_under_ten_keys_still_drops_one_at_a_time() -> None:
    counter = MemoryCounter(max_keys=5)
    for i in range(5):
        for _ in range(i + 1):
            counter.hit(f"k{i}", 60, 0.0)
    counter.hit("new", 60, 0.0)
    # Only the least counted made room; every other count survives.
    assert [counter.peek(f"k{i}", 60, 0.0) for i in range(5)] == [0, 2, 3, 4, 5]


def test_the_default_table_holds_a_hundred_thousand_keys_before_dropping_any() -> None:
    counter = MemoryCounter()
    for i in range(100_000):
        counter.hit(f"user-{i}", 60, 0.0)
    assert counter.peek("user-0", 60, 0.0) == 1  # full, nothing dropped yet
    counter.hit("one-more", 60, 0.0)
    # Full: the earliest of the equally counted tenth made room.
    assert counter.peek("user-0", 60, 0.0) == 0
    assert counter.peek("user-9999", 60, 0.0) == 0
    assert counter.peek("user-10000", 60, 0.0) == 1
