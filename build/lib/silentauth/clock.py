"""Injectable clocks, so that expiry logic is tested without sleeping."""

from __future__ import annotations

import threading
import time
from typing import Protocol


class Clock(Protocol):
    """Seconds since the epoch, as a float."""

    def __call__(self) -> float: ...


def system_clock() -> float:
    """Wall-clock time; tokens carry absolute timestamps, so this is epoch time."""
    return time.time()


class FakeClock:
    """A clock that moves only when told to (tests, the storm simulator)."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self._now = start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds

    def set(self, now: float) -> None:
        with self._lock:
            self._now = now
