"""Fixed-window rate limiting over pluggable counters.

A :class:`RateLimiter` counts in a :class:`Counters`: the store's for login
attempts (shared by every instance on PostgreSQL or Redis; in process on
SQLite, which keeps them in a :class:`MemoryCounter`), or
:class:`LocalCounters` for refreshes, per instance, so that the refresh hot
path adds no store round trip.
"""

from __future__ import annotations

import contextlib
import heapq
import math
import threading
from collections.abc import AsyncIterator
from typing import Protocol

from silentauth.errors import RateLimited
from silentauth.settings import Rate


class MemoryCounter:
    """In-process fixed-window counters with bounded memory.

    When the table is full, a new key makes room by dropping a tenth of it:
    counts of ended windows first (they carry no information), then the
    smallest live counts. Flooding the table with fresh keys (a spray of user
    names, each counted once) therefore cannot push out the key of the account
    being guessed: a key counted ``c`` times is dropped only once nine tenths of
    the table hold counts of at least ``c`` in the same window, so every ``c``
    guesses regained cost the attacker about ``0.9 * max_keys * c`` attempts
    (each within its own key's limit). A dropped key restarts from zero rather
    than inheriting the evicted count as Space-Saving (Metwally et al., 2005)
    would: inheriting never under-counts, but lets a flood that raises every
    count lock out every newly seen account, its owner included.
    """

    def __init__(self, max_keys: int = 100_000) -> None:
        self._counts: dict[str, tuple[int, int]] = {}
        self._lock = threading.Lock()
        self._max_keys = max_keys

    def hit(self, key: str, window: int, now: float, amount: int = 1) -> int:
        """Add ``amount`` to ``key``'s count in the window holding ``now``; return the count."""
        slot = int(now // window)  # pragma: no mutate - now / window gives the same slot for times >= 0 and whole-second windows
        with self._lock:
            old_slot, count = self._counts.get(key, (slot, 0))
            count = count + amount if old_slot == slot else amount
            if len(self._counts) >= self._max_keys and key not in self._counts:
                self._evict(slot)
            self._counts[key] = (slot, count)
            return count

    def peek(self, key: str, window: int, now: float) -> int:
        """``key``'s count in the window holding ``now`` (0 if it has none)."""
        slot = int(now // window)  # pragma: no mutate - now / window gives the same slot for times >= 0 and whole-second windows
        old_slot, count = self._counts.get(key, (slot, 0))
        return count if old_slot == slot else 0

    def _evict(self, slot: int) -> None:
        # At least a tenth goes at once so that a spray costs O(log n) per new
        # key (amortised), not a full scan each time the table is full.
        room = max(1, self._max_keys // 10)
        stale = [k for k, (s, _) in self._counts.items() if s != slot]
        if len(stale) < room:  # pragma: no mutate - at len(stale) == room, nsmallest(0, ...) adds nothing
            live = ((c, k) for k, (s, c) in self._counts.items() if s == slot)
            # Ties go to the earliest inserted: nsmallest is stable.
            stale += [k for _, k in heapq.nsmallest(room - len(stale), live, key=lambda ck: ck[0])]
        for k in stale:
            del self._counts[k]


class Counters(Protocol):
    """Where fixed-window counts live: a store (shared) or :class:`LocalCounters`."""

    async def hit(self, key: str, window: int, now: float) -> int: ...
    async def peek(self, key: str, window: int, now: float) -> int: ...


class LocalCounters:
    """:class:`MemoryCounter` behind the async counter interface (per process)."""

    def __init__(self) -> None:
        self._counter = MemoryCounter()

    async def hit(self, key: str, window: int, now: float) -> int:
        return self._counter.hit(key, window, now)

    async def peek(self, key: str, window: int, now: float) -> int:
        return self._counter.peek(key, window, now)


class RateLimiter:
    """Checks and counts attempts per key against one :class:`Rate`."""

    def __init__(self, store: Counters, rate: Rate | None, scale: int = 1) -> None:
        self._store = store
        self._rate = rate
        self._scale = scale
        self._in_flight: dict[str, int] = {}

    def _retry_after(self, rate: Rate, now: float) -> int:
        w = rate.window
        return max(1, math.ceil((int(now // w) + 1) * w - now))  # pragma: no mutate - now / w: same window for times >= 0

    async def check(self, key: str, now: float) -> None:
        """Raise :class:`RateLimited` if ``key`` has used its window up."""
        rate = self._rate
        if rate is None:
            return
        if await self._store.peek(key, rate.window, now) >= rate.limit * self._scale:
            raise RateLimited(retry_after=self._retry_after(rate, now))

    @contextlib.asynccontextmanager
    async def attempt(self, key: str, now: float) -> AsyncIterator[None]:
        """Admit one attempt whose outcome is counted later (by :meth:`record`).

        Attempts still in flight count against the limit, so a concurrent burst
        cannot slip past the check while its first failures are being judged
        (Argon2 takes milliseconds). The slot is taken before the first await.
        """
        rate = self._rate
        if rate is None:
            yield
            return
        self._in_flight[key] = self._in_flight.get(key, 0) + 1
        try:
            used = await self._store.peek(key, rate.window, now)
            if used + self._in_flight[key] > rate.limit * self._scale:
                raise RateLimited(retry_after=self._retry_after(rate, now))
            yield
        finally:
            left = self._in_flight[key] - 1
            if left:
                self._in_flight[key] = left
            else:
                del self._in_flight[key]

    async def record(self, key: str, now: float) -> None:
        """Count one attempt without judging it (the outcome is already known)."""
        if self._rate is not None:
            await self._store.hit(key, self._rate.window, now)
