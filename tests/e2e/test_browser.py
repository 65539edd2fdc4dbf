"""The browser client and demo page in real headless Chromium against the real server.

Time: the server runs on a :class:`FakeClock` and the pages on Playwright's clock, and
both are moved together, so "just after expiry" and "after the idle limit" need no
sleeping. Cookies are ``cookie_secure=True`` (the production default): Chromium treats
http://127.0.0.1 as a secure context and keeps ``__Secure-``/``__Host-`` cookies there.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from silentauth.clock import FakeClock
from tests.conftest import LiveServer, need_binary
from tests.web.test_node import ensure_node_modules

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ACCESS_TTL = 30
ROTATED = {"outcome": "rotated"}


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = need_binary("chromium", "/usr/bin/chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class Site:
    """One server (with its clock) and one browser profile (context) with its tabs."""

    def __init__(self, live: LiveServer, clock: FakeClock, context: Any) -> None:
        self.live, self.clock, self.context = live, clock, context
        self.auth_calls: list[str] = []
        self.errors: list[str] = []
        # Token-service calls only: the page's server panel also GETs /auth/sessions and /auth/demo.
        context.on(
            "request",
            lambda r: self.auth_calls.append(r.url.split("/auth/")[1]) if "/auth/" in r.url and r.method != "GET" else None,
        )

    def tab(self) -> Any:
        page = self.context.new_page()
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.goto(self.live.url + "/")
        page.wait_for_function("() => window.demo && window.demo.auth.state !== 'unknown'", timeout=10_000)
        return page

    def login(self, page: Any) -> None:
        page.click("#login-form button[type=submit]")
        page.wait_for_selector("#app-view:not([hidden])", timeout=10_000)

    def quiet(self, *pages: Any) -> None:
        """Close the demo page's live socket in ``pages``, for tests that count the refreshes
        of requests alone: moved past the deadline, the server closes the socket (4401)
        and the socket's refresh would be one more, or the one the requests then reuse."""
        for page in pages:
            page.evaluate("demo.live.socket.close()")

    def rotated(self) -> float:
        return self.live.metric("silentauth_refresh_total", **ROTATED)

    def advance(self, page: Any, seconds: float, fire_timers: bool = False) -> None:
        """Move server and browser time together (the browser's only from ``page``'s view)."""
        if fire_timers:
            self.clock.advance(seconds)
            self.context.clock.fast_forward(int(seconds * 1000))
        else:
            # The browser first: a live socket that the server closes at the new time then
            # refreshes with the browser already there, not with a token it dates in the past.
            now_ms = page.evaluate("Date.now()")
            self.context.clock.set_system_time(dt.datetime.fromtimestamp((now_ms + seconds * 1000) / 1000, dt.UTC))
            self.clock.advance(seconds)


@pytest.fixture
def site(browser: Any, live_server_factory: Callable[..., LiveServer]) -> Iterator[Callable[..., Site]]:
    contexts: list[Any] = []

    def start(init_script: str | None = None, **overrides: Any) -> Site:
        clock = FakeClock(time.time())
        settings: dict[str, Any] = {"access_ttl": ACCESS_TTL, "renew_within": 0, "cookie_secure": True}
        settings.update(overrides)
        # The factory seeds users with asyncio.run(), which refuses to run on the thread
        # where Playwright's sync API keeps its event loop: start the server from another.
        with ThreadPoolExecutor(1) as pool:
            live = pool.submit(live_server_factory, clock=clock, users={"demo": "demo"}, **settings).result()
        context = browser.new_context(viewport={"width": 1100, "height": 1400})
        context.clock.install()
        if init_script:
            context.add_init_script(init_script)
        contexts.append(context)
        return Site(live, clock, context)

    yield start
    for context in contexts:
        context.close()


# Every tab waits for one "go" on a BroadcastChannel, so the tabs start together (the
# refresh round trip is longer than the message's spread) instead of one after another.
ON_GO = """(action) => new Promise((resolve) => {
    const go = new BroadcastChannel("e2e-go");
    go.onmessage = () => { go.close(); resolve(); };
}).then(() => action === "reload" ? location.reload()
    : Promise.all(Array.from({length: 50}, () => demo.auth.fetch("/api/me").then((r) => r.status))))"""
ARM = "(action) => { window.__burst = (" + ON_GO + ")(action); return 0; }"
GO = "new BroadcastChannel('e2e-go').postMessage('go')"


def test_three_tabs_fifty_calls_each_after_expiry_make_one_refresh(site: Callable[..., Site]) -> None:
    s = site()
    first = s.tab()
    s.login(first)
    others = [s.tab(), s.tab()]
    assert all(p.evaluate("demo.auth.isAuthenticated") for p in others)
    assert s.rotated() == 0, "new tabs borrowed the live token instead of refreshing"
    tabs = [first, *others]

    # Counted from before the expiry: the demo page's live socket meets it too (the server
    # closes it 4401 at the deadline) and its refresh must be the same one as the calls'.
    before = s.rotated()
    grace = s.live.metric("silentauth_refresh_total", outcome="grace")
    s.auth_calls.clear()
    s.advance(first, ACCESS_TTL + 1)
    for page in tabs:
        page.evaluate(ARM, "burst")
    first.evaluate(GO)  # a second channel object in the same tab hears it too
    statuses = [status for page in tabs for status in page.evaluate("window.__burst")]

    assert len(statuses) == 150
    assert statuses == [200] * 150
    assert s.rotated() - before == 1
    # The server's grace window would hide racing refreshes from "rotated": count them all.
    assert s.live.metric("silentauth_refresh_total", outcome="grace") == grace
    assert s.auth_calls == ["refresh"]
    tokens = {p.evaluate("demo.auth.getAccessToken()") for p in tabs}
    assert len(tokens) == 1, "every tab uses the one new token"
    assert s.errors == []


def test_without_web_locks_tabs_fall_back_to_the_grace_window(site: Callable[..., Site]) -> None:
    s = site(init_script="Object.defineProperty(Navigator.prototype, 'locks', {get: () => undefined})")
    first = s.tab()
    s.login(first)
    tabs = [first, s.tab(), s.tab()]
    assert first.evaluate("navigator.locks") is None
    # Counted from before the expiry, so the refreshes of the tabs' live sockets (closed
    # 4401 at the deadline) count too: still at most one per tab.
    s.auth_calls.clear()
    s.advance(first, ACCESS_TTL + 1)
    for page in tabs:
        page.evaluate(ARM, "burst")
    first.evaluate(GO)
    statuses = [status for page in tabs for status in page.evaluate("window.__burst")]
    assert statuses == [200] * 150
    assert 1 <= s.auth_calls.count("refresh") <= 3  # at most one per tab
    assert s.live.metric("silentauth_refresh_total", outcome="reuse_detected") == 0
    assert all(p.evaluate("demo.auth.fetch('/api/me').then(r => r.status)") == 200 for p in tabs)
    assert s.errors == []


def test_axios_adapter_in_chromium_refreshes_once_and_replays_bodies(site: Callable[..., Site]) -> None:
    axios = ensure_node_modules() / "axios" / "dist" / "axios.min.js"
    s = site()
    page = s.tab()
    s.login(page)
    s.quiet(page)
    # Through DevTools, not a <script> tag: the page's CSP rightly refuses inline script.
    page.evaluate(axios.read_text())
    s.clock.advance(ACCESS_TTL + 10)  # server side only: the page meets 401s
    before = s.rotated()
    result = page.evaluate(
        """async () => {
            const { attachSilentAuth } = await import("/static/silentauth-axios.js");
            const api = axios.create();
            attachSilentAuth(api, demo.auth);
            const form = { essay: "x".repeat(100000), tags: ["a", "b"] };
            const [echo, ...rest] = await Promise.all([
                api.post("/api/echo", form),
                ...Array.from({ length: 20 }, () => api.get("/api/me")),
            ]);
            return { intact: JSON.stringify(echo.data) === JSON.stringify(form),
                     statuses: rest.map((r) => r.status) };
        }"""
    )
    assert result == {"intact": True, "statuses": [200] * 20}
    assert s.rotated() - before == 1
    assert s.auth_calls.count("refresh") == 1
    assert s.errors == []


def test_long_form_posted_after_expiry_arrives_intact(site: Callable[..., Site]) -> None:
    s = site()
    page = s.tab()
    s.login(page)
    s.quiet(page)
    # Server time passes beyond expiry and leeway while the page still trusts its token:
    # the POST meets a 401, the client refreshes once and replays the body.
    s.clock.advance(ACCESS_TTL + 10)
    before = s.rotated()
    result = page.evaluate(
        """async () => {
            const sent = JSON.stringify({essay: "Lorem ipsum ü€ ".repeat(20000), n: 12345});
            const res = await demo.auth.fetch("/api/echo", {method: "POST", body: sent,
                                                           headers: {"Content-Type": "application/json"}});
            return {status: res.status, intact: JSON.stringify(await res.json()) === sent, size: sent.length};
        }"""
    )
    assert result == {"status": 200, "intact": True, "size": result["size"]}
    assert result["size"] > 250_000
    assert s.rotated() - before == 1
    assert s.auth_calls.count("refresh") == 1

    # The demo's own button: the tab "sleeps" past expiry, then submits.
    s.clock.advance(ACCESS_TTL + 10)
    page.click("#long-form")
    page.wait_for_function("() => document.getElementById('result').textContent.includes('arrived intact')", timeout=10_000)
    assert s.rotated() - before == 2
    assert s.errors == []


def test_no_token_reaches_cookies_readable_by_script_or_storage(site: Callable[..., Site]) -> None:
    s = site()
    page = s.tab()
    s.login(page)
    page.evaluate("demo.auth.fetch('/api/me')")
    access = page.evaluate("demo.auth.getAccessToken()")
    refresh = next(c for c in s.context.cookies() if c["name"] == "__Host-silentauth-refresh")
    assert refresh["httpOnly"] and refresh["secure"] and refresh["path"] == "/"
    assert refresh["sameSite"] == "Strict"
    readable = page.evaluate("document.cookie")
    assert readable.startswith("__Host-silentauth-csrf=")
    storage = page.evaluate(
        "JSON.stringify([Object.entries(localStorage), Object.entries(sessionStorage)])"
    )
    for secret in (access, refresh["value"], access.split(".")[1]):
        assert secret not in readable
        assert secret not in storage
    assert storage == "[[],[]]"


def test_logout_in_one_tab_expires_the_other_tab(site: Callable[..., Site]) -> None:
    s = site()
    one = s.tab()
    s.login(one)
    two = s.tab()
    assert two.evaluate("demo.auth.isAuthenticated")

    one.click("#logout")
    two.wait_for_selector("#login-view:not([hidden])", timeout=5_000)
    error = two.evaluate(
        "demo.auth.fetch('/api/me').then(() => 'resolved', (e) => e.name)"
    )
    assert error == "SessionExpiredError"
    assert two.evaluate("demo.expiredCallbacks") == 1
    assert one.evaluate("demo.expiredCallbacks") == 0
    assert two.is_visible("#login-notice")
    assert s.live.metric("silentauth_sessions_revoked_total", reason="logout") == 1
    assert s.errors == []


def test_tab_woken_after_idle_limit_shows_login_once_without_loops(site: Callable[..., Site]) -> None:
    s = site(refresh_idle_ttl=120)
    page = s.tab()
    s.login(page)
    hide = """(hidden) => {
        Object.defineProperty(document, "visibilityState", {configurable: true, get: () => hidden ? "hidden" : "visible"});
        document.dispatchEvent(new Event("visibilitychange"));
    }"""
    page.evaluate(hide, True)
    s.advance(page, 600, fire_timers=True)  # the laptop sleeps ten minutes
    s.auth_calls.clear()
    page.evaluate(hide, False)

    page.wait_for_selector("#login-view:not([hidden])", timeout=5_000)
    assert page.evaluate("demo.expiredCallbacks") == 1
    assert s.auth_calls == ["refresh"]
    assert s.live.metric("silentauth_refresh_total", outcome="expired") == 1
    # More wake-ups and time: the login screen stays quiet.
    page.evaluate(hide, False)
    s.advance(page, 120, fire_timers=True)
    page.wait_for_timeout(300)
    assert s.auth_calls == ["refresh"]
    assert page.evaluate("demo.expiredCallbacks") == 1
    assert s.errors == []


def test_reloading_three_tabs_at_once_restores_with_one_refresh(site: Callable[..., Site]) -> None:
    s = site()
    tabs = [s.tab()]
    s.login(tabs[0])
    tabs += [s.tab(), s.tab()]
    s.quiet(*tabs)  # their fresh tokens would also be handed to the reloading tabs
    s.advance(tabs[0], ACCESS_TTL + 1)  # the in-memory tokens are stale as well
    s.auth_calls.clear()
    before = s.rotated()
    for page in tabs:
        page.evaluate(ARM, "reload")
    tabs[0].evaluate(GO)
    reloaded = "() => !window.__burst && window.demo && demo.auth.state !== 'unknown'"  # a new document
    for page in tabs:
        page.wait_for_function(reloaded, timeout=10_000)
    assert all(p.evaluate("demo.auth.isAuthenticated") for p in tabs)
    assert s.rotated() - before == 1
    assert s.auth_calls.count("refresh") == 1
    assert all(p.evaluate("demo.auth.fetch('/api/me').then(r => r.status)") == 200 for p in tabs)
    assert s.rotated() - before == 1


def test_demo_page_shows_push_step_up_and_devices_and_is_screenshotted(site: Callable[..., Site]) -> None:
    s = site(renew_within=10, step_up_max_age=20)
    page = s.tab()
    s.login(page)
    second = s.tab()
    page.click("#burst")
    page.wait_for_function("() => document.getElementById('result').textContent.includes('50/50 OK')", timeout=10_000)
    s.clock.advance(ACCESS_TTL - 8)  # server side only: 8 s left, inside renew_within
    page.evaluate("demo.auth.fetch('/api/me')")
    page.wait_for_function("() => document.getElementById('log').textContent.includes('pushed')", timeout=5_000)
    second.wait_for_function("() => document.getElementById('log').textContent.includes('another tab')", timeout=5_000)
    assert s.live.metric("silentauth_renewal_total") >= 1
    assert s.rotated() == 0

    page.click("#payments")  # the login is 22 s old, payments want 20 s: step-up
    page.wait_for_selector("#step-up-form:not([hidden])", timeout=5_000)
    page.click("#step-up-form button[type=submit]")
    page.wait_for_function("() => document.getElementById('result').textContent.includes('Payment accepted')", timeout=5_000)
    page.click("#reload-sessions")
    page.wait_for_function("() => document.querySelectorAll('#sessions tr').length === 1", timeout=5_000)
    assert page.is_visible("#sessions tr.current")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "demo.png"), full_page=True)
    assert (ARTIFACTS / "demo.png").stat().st_size > 10_000
    assert s.errors == []
