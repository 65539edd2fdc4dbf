"""Client-test helpers: a counting wrapper around real transports, metric sums."""

from __future__ import annotations

import threading
from collections import Counter

import httpx
import pytest

from silentauth.clock import FakeClock
from silentauth.server.metrics import REFRESH_OUTCOMES
from tests.conftest import LiveServer


class CountingTransport(httpx.BaseTransport, httpx.AsyncBaseTransport):
    """Counts token-endpoint requests by path, then sends them for real.

    Not a mock: every request still reaches the network (and fails there, if
    nothing listens); the wrapper only lets a test count attempts.
    """

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._sync = httpx.HTTPTransport()

    def _count(self, request: httpx.Request) -> None:
        form = request.content.decode()
        kind = "refresh" if "grant_type=refresh_token" in form else "password" if "grant_type=password" in form else "other"
        with self._lock:
            self.calls[kind] += 1

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self._count(request)
        return self._sync.handle_request(request)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self._count(request)
        async with httpx.AsyncHTTPTransport() as transport:
            response = await transport.handle_async_request(request)
            await response.aread()
            return httpx.Response(response.status_code, headers=response.headers, content=response.content)

    def close(self) -> None:
        self._sync.close()


def refresh_total(live: LiveServer) -> dict[str, float]:
    """Every refresh outcome the server has counted, from its /metrics."""
    text = httpx.get(f"{live.url}/metrics").text
    from tests.conftest import metric_value

    return {o: metric_value(text, "silentauth_refresh_total", outcome=o) for o in REFRESH_OUTCOMES}


@pytest.fixture
def shared_clock() -> FakeClock:
    """One fake clock for server and client: advancing it expires tokens for both."""
    import time

    return FakeClock(time.time())
