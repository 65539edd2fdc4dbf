"""Background refresh for idle, long-lived apps (chat, websockets, daemons).

A daemon thread sleeps until the token becomes due, then runs the normal
single-flight refresh, so it never races with request traffic: whichever
comes first refreshes, the other finds a fresh token.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable

from silentauth.client.coordination import Coordinator
from silentauth.client.token_set import TokenSet
from silentauth.errors import ClientError, SessionExpired

log = logging.getLogger("silentauth.client")

# After a failure the coordinator's cooldown governs; do not spin meanwhile.
MIN_WAKE = 0.05


class BackgroundRefresh:
    """One thread that keeps one :class:`Coordinator`'s token fresh."""

    def __init__(
        self,
        coord: Coordinator,
        refresh: Callable[[], TokenSet],
        interval: float,
        wait: Callable[[float], bool] | None = None,
    ) -> None:
        """``wait(seconds)`` sleeps and returns True once stopped.

        It defaults to the stop event's own wait; a test passes one that moves
        a fake clock instead, so the loop runs in virtual time.
        """
        self._coord = coord
        self._refresh = refresh
        self._interval = max(MIN_WAKE, interval)
        self._stop = threading.Event()
        self._wait = wait if wait is not None else self._stop.wait
        self._thread = threading.Thread(target=self._run, name="silentauth-refresh", daemon=True)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _delay(self) -> float:
        """Seconds until the current token is due, capped by ``interval``."""
        tokens = self._coord.tokens
        if tokens is None or not math.isfinite(tokens.expires_at):
            return self._interval
        lifetime = tokens.expires_at - tokens.issued_at
        due_at = tokens.expires_at - min(self._coord.margin, lifetime / 2)
        return min(self._interval, max(MIN_WAKE, due_at - self._coord.clock()))

    def _run(self) -> None:
        while not self._wait(self._delay()):
            if self._coord.tokens is None:
                continue  # not logged in (yet): nothing to keep alive
            try:
                self._refresh()
            except SessionExpired:
                log.info("session expired; background refresh stops")
                return
            except ClientError as exc:
                log.warning("background refresh failed: %r", exc)
            except Exception:
                log.exception("background refresh crashed; retrying")
