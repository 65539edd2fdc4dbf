"""The browser client in Chromium recovers from a refresh answer lost after the server rotated.

``page.route`` lets the refresh reach the real server (``route.fetch()``), then aborts
it: the server has rotated the cookie, the page never hears. The page keeps its
Idempotency-Key in ``localStorage`` and, after a sleep far past ``REUSE_GRACE``, its
next refresh (old cookie, same key) gets the same successor: no logout.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.e2e.test_browser import ACCESS_TTL, Site, browser, site

__all__ = ["browser", "site"]  # the fixtures, shared with the main browser suite

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::DeprecationWarning")]

KEY = "localStorage.getItem('silentauth-refresh-key')"
CALL = "demo.auth.fetch('/api/me').then((r) => r.status, (e) => e.name)"


def lose_refresh_answers(s: Site, page: Any, lost: list[int]) -> None:
    """Route /auth/refresh: the server answers, the page never hears (nor gets the cookie)."""

    def handle(route: Any) -> None:
        before = s.context.cookies()
        route.fetch()  # the server rotates and answers
        # route.fetch shares the context's cookie jar: undo the Set-Cookie the page never saw.
        s.context.clear_cookies()
        s.context.add_cookies(before)
        lost.append(1)
        route.abort("connectionreset")

    page.route("**/auth/refresh", handle)


def test_a_lost_refresh_answer_then_a_long_sleep_keeps_the_page_logged_in(site: Callable[..., Site]) -> None:
    s = site()
    page = s.tab()
    s.login(page)
    lost: list[int] = []
    lose_refresh_answers(s, page, lost)
    s.advance(page, ACCESS_TTL + 1)
    assert page.evaluate(CALL) == "RefreshFailedError"  # transient: no logout
    assert len(lost) == 1
    pending = page.evaluate(KEY)
    assert pending and len(pending) >= 22  # kept for the retry, shared by the tabs
    page.unroute("**/auth/refresh")

    grace = s.live.runtime.settings.reuse_grace
    s.advance(page, grace + 3600)  # the laptop sleeps for an hour
    assert page.evaluate(CALL) == 200
    assert s.live.metric("silentauth_refresh_total", outcome="retried") == 1
    assert s.live.metric("silentauth_refresh_total", outcome="rotated") == 1
    assert s.live.metric("silentauth_sessions_revoked_total", reason="reuse") == 0
    assert page.evaluate(KEY) is None  # answered: nothing pending is left in storage
    assert page.evaluate("demo.expiredCallbacks") == 0
    # The re-delivered cookie is the live one: the next refresh rotates normally.
    s.advance(page, ACCESS_TTL + 1)
    assert page.evaluate(CALL) == 200
    assert s.live.metric("silentauth_refresh_total", outcome="rotated") == 2
    assert s.errors == []


def test_another_tab_finishes_the_lost_refresh_with_the_shared_key(site: Callable[..., Site]) -> None:
    s = site()
    one = s.tab()
    s.login(one)
    lost: list[int] = []
    lose_refresh_answers(s, one, lost)
    s.advance(one, ACCESS_TTL + 1)
    assert one.evaluate(CALL) == "RefreshFailedError"
    one.close()  # the tab that lost the answer is gone
    s.clock.advance(s.live.runtime.settings.reuse_grace + 600)  # server time: far past the grace
    two = s.tab()  # a new tab, much later: restores from the old cookie with the pending key
    assert two.evaluate("demo.auth.isAuthenticated")
    assert two.evaluate(CALL) == 200
    assert s.live.metric("silentauth_refresh_total", outcome="retried") == 1
    assert s.live.metric("silentauth_sessions_revoked_total", reason="reuse") == 0
