"""The demo page in real headless Chromium against a real demo-mode server, in real time.

Access tokens live a few seconds here, so expiry really happens while the test waits.
Every test saves screenshots of the states it reaches under ``test-artifacts/`` and
checks that the page raised no error, logged no console error and met no 404.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import LiveServer, need_binary

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
ACCESS_TTL = 4
GRACE = 1.0


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = need_binary("chromium", "/usr/bin/chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class Demo:
    """A demo-mode server and one browser profile, recording what a visitor would notice."""

    def __init__(self, live: LiveServer, context: Any) -> None:
        self.live, self.context = live, context
        self.console_errors: list[str] = []
        self.page_errors: list[str] = []
        self.failed: list[str] = []  # answers >= 400 other than the expected ones
        self.refresh_posts = 0
        self.expected: set[tuple[str, int]] = set()
        self.required: set[tuple[str, int]] = set()
        self.seen: list[tuple[str, int]] = []  # the expected answers as they came
        context.on("response", self._response)

    def _response(self, response: Any) -> None:
        path = response.url.split(self.live.url, 1)[-1]
        if path == "/auth/refresh" and response.request.method == "POST":
            self.refresh_posts += 1
        if response.status >= 400:
            key = (path, response.status)
            (self.seen.append(key) if key in self.expected else self.failed.append(f"{response.status} {path}"))

    def expect(self, path: str, status: int) -> None:
        """An answer the flow under test must produce (a revoked token meets its 401).

        The panel's once-a-second ``/auth/sessions`` read may also meet the revoked token
        in the few milliseconds before the tabs learn it (and then refresh once more):
        allowed, never required.
        """
        self.expected.add((path, status))
        self.expected.add(("/auth/sessions", 401))
        self.required.add((path, status))

    def tab(self) -> Any:
        page = self.context.new_page()
        page.on("pageerror", lambda e: self.page_errors.append(str(e)))
        page.on("console", lambda m: self.console_errors.append(m.text) if m.type == "error" else None)
        page.goto(self.live.url + "/")
        page.wait_for_function("() => window.demo && window.demo.auth.state !== 'unknown'", timeout=10_000)
        return page

    def login(self, page: Any) -> None:
        page.click("#login-form button[type=submit]")
        page.wait_for_selector("#app-view:not([hidden])", timeout=10_000)

    def metric(self, outcome: str) -> float:
        return self.live.metric("silentauth_refresh_total", outcome=outcome)

    def shot(self, page: Any, name: str) -> None:
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / f"demo-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        assert path.stat().st_size > 10_000

    def assert_clean(self, *pages: Any) -> None:
        """No page error, no stray answer >= 400, no red line in the log, and no console
        error but Chromium's own line for each expected answer."""
        assert self.page_errors == []
        assert self.failed == []
        assert set(self.seen) >= self.required, "the flow produced each expected answer"
        # Chromium reports every answer >= 400 to fetch() on the console, even one the
        # page handles: exactly one such line per expected answer is allowed, no other.
        resource = re.compile(r"^Failed to load resource: the server responded with a status of (\d+)")
        codes = sorted(int(m.group(1)) for m in map(resource.match, self.console_errors) if m)
        assert codes == sorted(status for _, status in self.seen)
        assert [e for e in self.console_errors if not resource.match(e)] == []
        for page in pages:
            assert page.locator("#log li.bad").count() == 0, page.locator("#log li.bad").all_text_contents()


@pytest.fixture
def demo(browser: Any, live_server_factory: Callable[..., LiveServer]) -> Iterator[Callable[..., Demo]]:
    contexts: list[Any] = []

    def start(**overrides: Any) -> Demo:
        settings: dict[str, Any] = {
            "demo": True,
            "access_ttl": ACCESS_TTL,
            "renew_within": 1,
            "reuse_grace": GRACE,
            "cookie_secure": True,
        }
        settings.update(overrides)
        # The factory seeds users with asyncio.run(), which refuses to run on the thread
        # where Playwright's sync API keeps its event loop: start the server from another.
        with ThreadPoolExecutor(1) as pool:
            live = pool.submit(live_server_factory, users={"demo": "demo"}, **settings).result()
        context = browser.new_context(viewport={"width": 1100, "height": 900})
        contexts.append(context)
        return Demo(live, context)

    yield start
    for context in contexts:
        context.close()


def log_text(page: Any) -> str:
    return str(page.evaluate("() => document.getElementById('log').textContent"))


def test_first_view_is_clean_with_an_icon_and_the_storm_plot(demo: Callable[..., Demo]) -> None:
    d = demo()
    page = d.tab()
    assert page.is_visible("#login-view")
    assert not page.is_visible("#login-notice"), "a first visit has nothing to explain"
    page.wait_for_function("() => document.querySelector('#counters .tile b').textContent !== ''")
    # The icon and the plot are real files of this origin, not 404s.
    for src in page.evaluate("() => [document.querySelector('link[rel=icon]').href, document.querySelector('.storm img').src]"):
        r = httpx.get(src)
        assert r.status_code == 200 and r.headers["content-type"].startswith("image/"), src
    assert page.evaluate("() => document.querySelector('.storm img').naturalWidth") > 500
    r = httpx.get(d.live.url + "/favicon.ico")
    assert r.status_code == 200 and r.headers["content-type"].startswith("image/svg+xml")
    page.wait_for_timeout(1200)  # a panel poll or two
    d.shot(page, "1-first-view")
    d.assert_clean(page)


def test_paused_tabs_let_the_token_expire_and_fifty_calls_make_one_refresh(demo: Callable[..., Demo]) -> None:
    d = demo()
    first = d.tab()
    d.login(first)
    second = d.tab()
    assert second.evaluate("demo.auth.isAuthenticated")
    first.check("#pause")
    second.wait_for_function("() => demo.auth.proactivePaused && document.getElementById('pause').checked")
    # Real time: both tabs hold one token, and nothing renews it before it runs out.
    for page in (first, second):
        page.wait_for_function("() => demo.auth.expiresAt < Date.now()", timeout=(ACCESS_TTL + 3) * 1000)
    first.wait_for_function("() => document.getElementById('token-state').textContent.startsWith('expired')")
    d.shot(first, "2-paused-expired")
    rotated, grace, posts = d.metric("rotated"), d.metric("grace"), d.refresh_posts

    first.click("#burst")
    first.wait_for_function("() => /50\\/50 OK/.test(document.getElementById('result').textContent)", timeout=10_000)

    assert d.metric("rotated") - rotated == 1
    assert d.metric("grace") == grace, "no racing refresh either"
    assert d.refresh_posts - posts == 1
    result = first.text_content("#result") or ""
    assert "50/50 OK, 0 failed" in result
    assert "1 refresh in this tab, 1 refresh on the server" in result
    assert "refresh (token had expired when a request needed it)" in log_text(first)
    second.wait_for_function(
        "() => document.getElementById('log').textContent.includes('adopted the token from another tab')",
        timeout=5_000,
    )
    assert second.evaluate("demo.refreshes") == 0
    assert second.evaluate("demo.auth.getAccessToken()") == first.evaluate("demo.auth.getAccessToken()")
    first.wait_for_timeout(1200)  # the panel shows the new counts
    d.shot(first, "3-burst-one-refresh")
    d.shot(second, "4-second-tab-adopted")
    d.assert_clean(first, second)


def test_a_revoked_session_is_explained_in_every_tab_without_red(demo: Callable[..., Demo]) -> None:
    d = demo(access_ttl=30)
    d.expect("/api/me", 401)  # the revoked session's token, once
    d.expect("/auth/refresh", 400)  # its refresh token, once
    first = d.tab()
    d.login(first)
    second = d.tab()
    first.click("#revoke-self")
    for page in (first, second):
        page.wait_for_selector("#login-view:not([hidden])", timeout=5_000)
        page.wait_for_function(
            "() => document.getElementById('login-notice').textContent.includes('logged out from another device')",
            timeout=5_000,
        )
    assert d.live.metric("silentauth_sessions_revoked_total", reason="device") == 1
    assert "session ended" in log_text(second)
    d.shot(first, "5-revoked-this-tab")
    d.shot(second, "6-revoked-other-tab")
    d.assert_clean(first, second)

    # Reloading after the session ended: one refresh meets the dead cookie (only the
    # server knows it is dead), and the page says why without a red line.
    d.seen.clear()
    d.expected, d.required = set(), set()
    d.expect("/auth/refresh", 400)
    d.console_errors.clear()
    first.reload()
    first.wait_for_function("() => window.demo && demo.auth.state === 'anonymous'")
    first.wait_for_function(
        "() => document.getElementById('login-notice').textContent.includes('logged out from another device')",
        timeout=5_000,
    )
    d.shot(first, "7-reloaded-after-revocation")
    d.assert_clean(first)


def test_replaying_an_old_refresh_token_ends_the_session_in_both_tabs_within_a_second(
    demo: Callable[..., Demo],
) -> None:
    d = demo()
    d.expect("/auth/token", 400)  # the thief's replay
    d.expect("/api/me", 401)
    d.expect("/auth/refresh", 400)
    first = d.tab()
    d.login(first)
    second = d.tab()
    # A proactive refresh (by either tab) replaces the first refresh token: the thief's.
    deadline = time.monotonic() + ACCESS_TTL + 3
    while d.metric("rotated") < 1:
        assert time.monotonic() < deadline, "no proactive refresh"
        first.wait_for_timeout(200)
    first.click("#replay")
    for page in (first, second):
        page.wait_for_selector("#login-view:not([hidden])", timeout=GRACE * 1000 + 5_000)
    answered = first.evaluate("demo.replayAnsweredAt")
    ended = [page.evaluate("demo.endedAt") for page in (first, second)]
    assert all(0 <= at - answered < 1000 for at in ended), (answered, ended)

    assert d.metric("reuse_detected") == 1
    assert d.live.metric("silentauth_sessions_revoked_total", reason="reuse") == 1
    for page in (first, second):
        page.wait_for_function(
            "() => document.getElementById('login-notice').textContent.includes('suspected theft')", timeout=5_000
        )
        page.wait_for_function(
            "() => document.querySelector('[data-metric=reuse] b').textContent === '1'", timeout=3_000
        )
    assert "the server to the thief: 400 invalid_grant" in log_text(first)
    assert '"reuse detected" rose to 1' in log_text(second)
    d.shot(first, "8-theft-this-tab")
    d.shot(second, "9-theft-other-tab")
    d.assert_clean(first, second)


def test_the_device_list_follows_a_step_up_login_and_an_early_replay_is_explained(demo: Callable[..., Demo]) -> None:
    d = demo(access_ttl=30, step_up_max_age=1)
    d.expect("/api/payments", 401)  # the step-up challenge
    page = d.tab()
    d.login(page)
    old = page.evaluate("demo.auth.sessionId")
    page.click("#replay")  # too early: no refresh token has been replaced yet (and no 4xx)
    page.wait_for_function("() => document.getElementById('result').textContent.includes('not refreshed yet')")
    page.wait_for_function("(sid) => document.querySelector('#sessions tr.current td')?.textContent === sid.slice(0, 8)", arg=old)
    page.wait_for_timeout(1100)  # the login is now older than STEP_UP_MAX_AGE
    page.click("#payments")
    page.wait_for_selector("#step-up-form:not([hidden])", timeout=5_000)
    page.click("#step-up-form button[type=submit]")
    page.wait_for_function("() => document.getElementById('result').textContent.includes('Payment accepted')", timeout=5_000)
    new = page.evaluate("demo.auth.sessionId")
    assert new != old
    # The panel alone (no click on "reload"): one session left, the new one marked.
    page.wait_for_function(
        "(sid) => { const rows = document.querySelectorAll('#sessions tr');"
        " return rows.length === 1 && rows[0].classList.contains('current')"
        " && rows[0].querySelector('td').textContent === sid.slice(0, 8); }",
        arg=new,
        timeout=3_000,
    )
    d.shot(page, "10-after-step-up")
    d.assert_clean(page)


LIVE = "() => ({ ...demo.live.stats, open: demo.live.socket?.readyState === 1, refreshes: demo.refreshes })"
REVOKED_WORDS = "the session was revoked"


def stream_through_five_refreshes(d: Demo) -> Any:
    """A logged-in tab whose live panel has streamed through five refreshes, gap-free."""
    first = d.tab()
    d.login(first)
    first.wait_for_function("() => demo.live.stats.ticks > 0 && demo.live.socket.readyState === 1", timeout=5_000)
    start = first.evaluate(LIVE)
    # ~2.5 s a refresh with 4 s tokens: five of them take about 13 s.
    # The panel notices a re-authentication at the next tick, up to 0.2 s after the refresh.
    first.wait_for_function(
        f"() => demo.refreshes >= {start['refreshes'] + 5} && demo.live.stats.reauths >= 5",
        timeout=(ACCESS_TTL + 1) * 6_000,
    )
    state = first.evaluate(LIVE)
    assert state["open"] and state["gaps"] == 0 and state["reconnects"] == 0
    assert state["ticks"] > 40  # a tick every 0.2 s for over 10 s, and the panel shows them
    assert first.text_content("#live-gaps") == "0"
    assert first.text_content("#live-state") == "streaming"
    assert int(first.text_content("#live-seq") or -1) == state["lastSeq"] >= 40
    assert first.locator("#live-lines li.refresh").count() >= 5
    return first


def assert_stopped_for_revocation(first: Any, revoked_at: float) -> None:
    """The panel stopped within a second of ``revoked_at`` (epoch ms), saying why in words."""
    # The server's own reason, in every case: a tab that learns first (a refused refresh,
    # another tab's broadcast) waits for its socket's close to say why.
    first.wait_for_function("() => demo.live.stats.stopped !== null", timeout=3_000)
    state = first.evaluate(LIVE)
    assert (state["code"], state["stopped"]) == (4401, "session revoked")
    assert state["stoppedAt"] - revoked_at < 1000
    assert state["gaps"] == 0 and state["reconnects"] == 0
    assert (first.text_content("#live-state") or "").startswith(f"stopped: {REVOKED_WORDS}")
    first.wait_for_selector("#login-view:not([hidden])", timeout=5_000)
    assert first.is_visible("#live-state"), "the stopped panel stays in view beside the login form"
    first.wait_for_timeout(500)  # nothing reopens it: the session is over
    assert first.evaluate("demo.live.socket.closed && demo.live.stats.stopped") == "session revoked"


@pytest.mark.slow
def test_the_live_panel_streams_through_five_refreshes_and_stops_within_a_second_of_logout_all(
    demo: Callable[..., Demo],
) -> None:
    d = demo(renew_within=0)  # every new token from a refresh: the count below is of refreshes
    d.expect("/auth/refresh", 400)  # the revoked session's refresh token, met once the socket closes
    first = stream_through_five_refreshes(d)
    d.shot(first, "11-live-panel-streaming")

    second = d.tab()
    second.wait_for_function("() => demo.auth.isAuthenticated", timeout=5_000)
    sent_at = second.evaluate(
        "async () => { const t = Date.now(); await demo.auth.fetch('/auth/logout-all', {method: 'POST'}); return t; }"
    )
    assert_stopped_for_revocation(first, sent_at)
    d.shot(first, "12-live-panel-stopped")
    d.assert_clean(first, second)


@pytest.mark.slow
def test_the_live_panel_stops_within_a_second_of_a_revocation_from_the_cli(demo: Callable[..., Demo]) -> None:
    # The token service follows revocations made by other processes every revocation_poll.
    d = demo(renew_within=0, revocation_poll=0.25)
    d.expect("/auth/refresh", 400)
    first = stream_through_five_refreshes(d)
    sid = first.evaluate("demo.auth.sessionId")
    env = {**os.environ, "SILENTAUTH_DATABASE_URL": d.live.runtime.settings.database_url}
    done = subprocess.run(
        [sys.executable, "-m", "silentauth", "sessions", "revoke", sid],
        capture_output=True, text=True, env=env, timeout=60, check=True,
    )
    revoked_at = time.time() * 1000  # the revocation is committed once the command has returned
    assert f"revoked {sid}" in done.stdout
    assert_stopped_for_revocation(first, revoked_at)
    assert "administrator" in (first.text_content("#login-notice") or "")
    d.assert_clean(first)


@pytest.mark.slow
def test_the_live_panel_waits_while_paused_and_follows_the_refresh_of_the_next_request(
    demo: Callable[..., Demo],
) -> None:
    d = demo(renew_within=0)
    first = d.tab()
    d.login(first)
    first.wait_for_function("() => demo.live.stats.ticks > 0 && demo.live.socket.readyState === 1", timeout=5_000)
    first.check("#pause")
    posts = d.refresh_posts
    # The server closes the socket at the token's deadline (4401); paused, it waits.
    first.wait_for_function("() => demo.live.socket.waiting", timeout=(ACCESS_TTL + 3) * 1000)
    first.wait_for_timeout(1000)
    assert d.refresh_posts == posts, "neither the client nor the socket renewed the token while paused"
    assert first.text_content("#live-state") == "waiting for a new token"
    first.click("#burst")
    first.wait_for_function("() => /50\\/50 OK/.test(document.getElementById('result').textContent)", timeout=10_000)
    first.wait_for_function("() => demo.live.socket.readyState === 1 && demo.live.stats.reconnects === 1", timeout=5_000)
    assert d.refresh_posts - posts == 1, "the burst's one refresh also brought the socket back"
    assert first.evaluate(LIVE)["gaps"] == 0
    d.shot(first, "13-live-panel-after-pause")
    d.assert_clean(first)
