"""The example application in headless Chromium: its own login page, the browser client.

The application runs under uvicorn on loopback with silentauth embedded at
``/sa``; the page logs in through the application's own ``/login`` or
one-time code and the browser client (served from ``/sa/static``) takes the
session over from the cookies. Server time is a fake clock and the page's is
Playwright's; both move together, so token lifetimes pass without sleeping.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from examples.adopt.app import create_app
from silentauth.client import TokenAuth
from silentauth.clock import FakeClock
from silentauth.core.passwords import Passwords
from silentauth.settings import Settings
from tests.conftest import LiveServer, need_binary, run_live

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::DeprecationWarning")]
ACCESS_TTL = 60


@dataclass
class Site:
    live: LiveServer
    clock: FakeClock
    context: Any

    @property
    def app(self) -> Any:
        return self.live.app

    def page(self) -> Any:
        page = self.context.new_page()
        page.goto(self.live.url + "/")
        page.wait_for_function("() => window.auth && window.appLogin", timeout=10_000)
        return page

    def advance(self, page: Any, seconds: float) -> None:
        """Move the server's clock and the browser's together."""
        self.clock.advance(seconds)
        now_ms = page.evaluate("Date.now()")
        self.context.clock.set_system_time(dt.datetime.fromtimestamp((now_ms + seconds * 1000) / 1000, dt.UTC))

    def rotations(self) -> float:
        text = self.app.state.auth.runtime.metrics.render().decode()
        line = next(x for x in text.splitlines() if x.startswith('silentauth_refresh_total{outcome="rotated"}'))
        return float(line.split()[-1])


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    executable = need_binary("chromium", "/usr/bin/chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=["--no-sandbox", "--disable-gpu"])
        yield browser
        browser.close()


@pytest.fixture
def site(chromium: Any, tmp_path: Path) -> Iterator[Site]:
    clock = FakeClock(time.time())
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'silentauth.db'}",
        secret_key="example-secret-key-with-at-least-32-bytes",
        cookie_secure=True,  # Chromium treats http://127.0.0.1 as a secure context
        access_ttl=ACCESS_TTL,
        renew_within=0,
        ttl_jitter=0.0,
        first_token_spread=0.0,
        rate_limit_login=None,
        rate_limit_refresh=None,
    )
    app = create_app(
        settings,
        f"sqlite:///{tmp_path / 'app.db'}",
        clock=clock,
        scrypt_n=2**4,
        passwords=Passwords(time_cost=1, memory_cost=1024),
    )
    server = run_live(app)
    live = next(server)

    async def seed() -> None:
        await app.state.users.add("ada@example.com", "ada-pass", ["admin"])
        await app.state.users.add("bob@example.com", "bob-pass")

    # Playwright's sync API keeps an event loop on this thread: seed from another.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(anyio.run, seed).result()
    context = chromium.new_context()
    context.clock.install()
    try:
        yield Site(live, clock, context)
    finally:
        context.close()
        for _ in server:
            pass


PROFILE = "window.auth.fetch('/api/profile').then((r) => r.status === 200 ? r.json() : r.status)"
REPORT = "window.auth.fetch('/api/admin/report').then((r) => r.status)"
PROFILE_OR_ERROR = (
    "window.auth.fetch('/api/profile').then((r) => r.status, (e) => e.name)"
)


def test_browser_sessions_through_lifetimes_role_change_and_password_change(site: Site) -> None:
    laptop = site.page()
    assert laptop.evaluate("appLogin('bob@example.com', 'bob-pass', true)") is True
    assert laptop.evaluate(PROFILE)["email"] == "bob@example.com"
    cookies = {c["name"]: c for c in site.context.cookies()}
    assert cookies["__Host-silentauth-refresh"]["httpOnly"] is True

    before = site.rotations()
    for _ in range(3):  # three access-token lifetimes, each ended by one silent refresh
        site.advance(laptop, ACCESS_TTL + 1)
        assert laptop.evaluate(PROFILE)["roles"] == []
    assert site.rotations() - before == 3

    # The administrator, on the Python client, gives bob a role: it shows at his next refresh.
    admin = TokenAuth(f"{site.live.url}/sa/auth/token", clock=site.clock, jitter=0.0)
    admin.login("ada@example.com", "ada-pass")
    with httpx.Client(base_url=site.live.url, auth=admin) as ada:
        r = ada.post("/api/admin/roles", json={"email": "bob@example.com", "roles": ["admin"]})
        assert r.status_code == 204, r.text
    assert laptop.evaluate(REPORT) == 403
    site.advance(laptop, ACCESS_TTL + 1)
    assert laptop.evaluate(REPORT) == 200

    # A phone logs in with a one-time code (another browser profile, same user).
    phone_context = site.context.browser.new_context()
    try:
        phone_context.clock.install()
        phone = phone_context.new_page()
        phone.goto(site.live.url + "/")
        phone.wait_for_function("() => window.auth && window.codeLogin", timeout=10_000)
        phone.evaluate("fetch('/login/code/request', {method: 'POST', headers: {'Content-Type': 'application/json'}, body: JSON.stringify({email: 'bob@example.com'})})")
        code = site.app.state.outbox.codes["bob@example.com"][0]
        assert phone.evaluate(f"codeLogin('bob@example.com', '{code}')") is True
        assert phone.evaluate(PROFILE)["email"] == "bob@example.com"

        # The password change on the laptop logs the phone out; the laptop stays in.
        status = laptop.evaluate(
            "window.auth.fetch('/api/password', {method: 'POST', headers: {'Content-Type': 'application/json'},"
            " body: JSON.stringify({old_password: 'bob-pass', new_password: 'new-pass'})}).then((r) => r.status)"
        )
        assert status == 204
        assert phone.evaluate(PROFILE_OR_ERROR) in (401, "SessionExpiredError")
        assert phone.evaluate("window.auth.isAuthenticated") is False
        site.advance(laptop, ACCESS_TTL + 1)
        assert laptop.evaluate(PROFILE)["email"] == "bob@example.com"
    finally:
        phone_context.close()
