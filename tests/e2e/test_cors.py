"""``CORS_ORIGINS`` in real Chromium: a page on a second origin uses the service.

The page is served by a small static server on its own loopback port (another
origin, the same site: SameSite ignores ports, so the SameSite=Strict refresh
cookie still travels, as between ``app.example.com`` and ``auth.example.com``).
It imports the browser client, points ``baseUrl`` at the service and logs in,
calls the API, has a renewal pushed, crosses an expiry and calls again. A page
on an unlisted port gets nothing: its login is blocked by CORS and a
preflight-free form-style login is refused by the server.

Time: the server runs on a :class:`FakeClock` and the page on Playwright's
clock; both are moved together, so nothing sleeps.
"""

from __future__ import annotations

import datetime as dt
import functools
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

import silentauth
from silentauth.clock import FakeClock
from tests.conftest import LiveServer, need_binary
from tests.e2e.test_browser import CHROMIUM_ARGS

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

ACCESS_TTL = 30
RENEW_WITHIN = 10
CLIENT_JS = Path(silentauth.__file__).resolve().parent / "web" / "static" / "silentauth.js"

# The service's URL comes in the query string (?service=...), so one page serves any port.
PAGE = """<!doctype html><meta charset="utf-8"><title>other origin</title>
<script type="module">
  import { createAuthClient } from "./silentauth.js";
  const service = new URLSearchParams(location.search).get("service");
  const events = [];
  window.events = events;
  window.auth = createAuthClient({ baseUrl: service, onEvent: (e) => events.push(`${e.type}:${e.source ?? ""}`) });
  window.me = async () => {
    const r = await auth.fetch(`${service}/api/me`);
    return { status: r.status, body: await r.json() };
  };
  window.pageReady = true;
</script>"""


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = need_binary("chromium", "/usr/bin/chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page_server(tmp_path: Path) -> Iterator[Callable[[], str]]:
    """``serve()`` -> the origin of a new static server holding the page and the client."""
    root = tmp_path / "site"
    root.mkdir()
    for module in CLIENT_JS.parent.glob("silentauth*.js"):  # the client and the modules it imports
        shutil.copy(module, root / module.name)
    (root / "index.html").write_text(PAGE)
    servers: list[ThreadingHTTPServer] = []

    def serve() -> str:
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(root)))
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        servers.append(httpd)
        return f"http://127.0.0.1:{httpd.server_address[1]}"

    yield serve
    for httpd in servers:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def service(live_server_factory: Callable[..., LiveServer]) -> Callable[..., tuple[LiveServer, FakeClock]]:
    def start(**overrides: Any) -> tuple[LiveServer, FakeClock]:
        clock = FakeClock(time.time())
        settings: dict[str, Any] = {"access_ttl": ACCESS_TTL, "renew_within": RENEW_WITHIN, "cookie_secure": True}
        settings.update(overrides)
        # The factory seeds users with asyncio.run(), which refuses to run on the thread
        # where Playwright's sync API keeps its event loop: start the server from another.
        with ThreadPoolExecutor(1) as pool:
            live = pool.submit(live_server_factory, clock=clock, users={"demo": "demo"}, **settings).result()
        return live, clock

    return start


def _open(browser: Any, origin: str, service_url: str) -> tuple[Any, Any, list[str]]:
    context = browser.new_context()
    context.clock.install()
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{origin}/index.html?service={service_url}")
    page.wait_for_function("window.pageReady === true && window.auth.state !== 'unknown'", timeout=10_000)
    return context, page, errors


def _advance(page: Any, context: Any, clock: FakeClock, seconds: float) -> None:
    """Move server and page time together."""
    clock.advance(seconds)
    now_ms = page.evaluate("Date.now()")
    context.clock.set_system_time(dt.datetime.fromtimestamp((now_ms + seconds * 1000) / 1000, dt.UTC))


def test_a_listed_origin_logs_in_gets_renewals_refreshes_and_calls_the_api(
    browser: Any, service: Callable[..., tuple[LiveServer, FakeClock]], page_server: Callable[[], str]
) -> None:
    origin = page_server()
    live, clock = service(cors_origins=(origin,))
    context, page, errors = _open(browser, origin, live.url)
    try:
        assert page.evaluate("location.origin") != live.url
        login = page.evaluate("auth.login('demo', 'demo').then((c) => c.preferred_username)")
        assert login == "demo"
        assert live.metric("silentauth_login_total", outcome="ok") == 1
        first = page.evaluate("me()")
        assert first["status"] == 200 and first["body"]["username"] == "demo"

        # Within RENEW_WITHIN of expiry: the API pushes New-Access-Token, which the page
        # can only read because it is exposed to this origin.
        before = page.evaluate("auth.expiresAt")
        _advance(page, context, clock, ACCESS_TTL - RENEW_WITHIN + 5)
        pushed = page.evaluate("me()")
        assert pushed["status"] == 200
        assert "token:pushed" in page.evaluate("events")
        assert page.evaluate("auth.expiresAt") > before

        # Past every token's expiry: the client refreshes through the cookie (a
        # credentialed, preflighted cross-origin POST) and the call succeeds.
        rotated = live.metric("silentauth_refresh_total", outcome="rotated")
        _advance(page, context, clock, ACCESS_TTL + 1)
        after = page.evaluate("me()")
        assert after["status"] == 200 and after["body"]["session_id"] == first["body"]["session_id"]
        assert live.metric("silentauth_refresh_total", outcome="rotated") == rotated + 1
        assert page.evaluate("auth.isAuthenticated")
        assert errors == []
    finally:
        context.close()


def test_an_unlisted_origin_is_blocked(
    browser: Any, service: Callable[..., tuple[LiveServer, FakeClock]], page_server: Callable[[], str]
) -> None:
    listed, unlisted = page_server(), page_server()
    live, _ = service(cors_origins=(listed,))
    context, page, errors = _open(browser, unlisted, live.url)
    try:
        # The client's login: its JSON preflight is refused, so the POST is never sent.
        failure = page.evaluate("auth.login('demo', 'demo').then(() => 'logged in', (e) => e.name)")
        assert failure == "TypeError"  # fetch's "Failed to fetch": CORS refused the page
        # A form-style login needs no preflight and does reach the server: refused there.
        page.evaluate(
            """(url) => fetch(url + "/auth/login", {
                method: "POST", mode: "no-cors", credentials: "include",
                body: JSON.stringify({ username: "demo", password: "demo" }),
            })""",
            live.url,
        )
        assert [c["name"] for c in context.cookies()] == []
        assert live.metric("silentauth_login_total", outcome="ok") == 0
        assert not page.evaluate("auth.isAuthenticated")
        assert errors == []
    finally:
        context.close()
