"""Attacks from a sibling host, in real Chromium over real TLS.

The victim's app is our real service on ``https://app.example.test``; the attacker
controls ``https://evil.example.test`` (same site, other host: see ``tls.py``). He
can set cookies for ``Domain=example.test`` and frame the app's pages, and that is
all he can do: the tests show that neither gets him anywhere.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from silentauth.server.app import create_app
from tests.conftest import FAST_PASSWORDS, make_settings, need_binary, seed_users
from tests.e2e.test_browser import CHROMIUM_ARGS
from tests.e2e.tls import (
    APP_HOST,
    EVIL_HOST,
    SITE,
    Certificate,
    chromium_args,
    make_certificate,
    serve_tls,
)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@dataclass
class Attacker:
    """What evil.example.test serves: tossed cookies at ``/toss``, frames at ``/frame``."""

    cookies: list[str] = field(default_factory=list)
    framed_url: str = ""

    def app(self) -> Starlette:
        async def toss(request: Request) -> Response:
            response = HTMLResponse("<!doctype html><title>evil</title><h1>nothing to see</h1>")
            for cookie in self.cookies:
                response.headers.append("set-cookie", cookie)
            return response

        async def frame(request: Request) -> Response:
            # Two frames: the victim app, and a control page of our own that does render.
            return HTMLResponse(
                "<!doctype html><title>evil</title>"
                f'<iframe id="victim" src="{self.framed_url}" width="900" height="600"></iframe>'
                '<iframe id="control" src="/inner" width="300" height="100"></iframe>'
            )

        async def inner(request: Request) -> Response:
            return HTMLResponse("<!doctype html><title>inner</title><h1>control frame</h1>")

        return Starlette(
            routes=[Route("/toss", toss), Route("/frame", frame), Route("/inner", inner)]
        )


@dataclass
class Sites:
    app_url: str
    evil_url: str
    attacker: Attacker
    browser: Any


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    return make_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def tls_browser(cert: Certificate) -> Iterator[Any]:
    executable = need_binary("chromium", "/usr/bin/chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=executable, args=[*CHROMIUM_ARGS, *chromium_args(cert)])
        yield chromium
        chromium.close()


@pytest.fixture
def sites(tmp_path: Path, cert: Certificate, tls_browser: Any) -> Iterator[Sites]:
    # Production defaults: secure cookies on.
    settings = make_settings(tmp_path, cookie_secure=True)
    seed_users(settings, {"alice": "secret", "mallory": "hunter2"})
    attacker = Attacker()
    servers = [serve_tls(create_app(settings, passwords=FAST_PASSWORDS), cert), serve_tls(attacker.app(), cert)]
    # Started off Playwright's thread: its sync API keeps an event loop there.
    with ThreadPoolExecutor(1) as pool:
        app_port, evil_port = pool.submit(lambda: [next(s) for s in servers]).result()
    try:
        yield Sites(f"https://{APP_HOST}:{app_port}", f"https://{EVIL_HOST}:{evil_port}", attacker, tls_browser)
    finally:
        for gen in servers:
            for _ in gen:
                pass


def attacker_session(app_url: str, cert: Certificate) -> tuple[str, str]:
    """Mallory logs in at the real app as himself: (his refresh token, his CSRF proof)."""
    port = app_url.rsplit(":", 1)[1]
    r = httpx.post(
        f"https://127.0.0.1:{port}/auth/login",
        json={"username": "mallory", "password": "hunter2"},
        headers={"Host": f"{APP_HOST}:{port}", "Origin": app_url},
        verify=str(cert.cafile),
    )
    assert r.status_code == 200, r.text
    refresh = next(v for k, v in r.cookies.items() if k.endswith("silentauth-refresh"))
    return refresh, r.json()["csrf_token"]


def tossed_cookies(refresh: str, csrf: str) -> list[str]:
    """Every name the service or its client ever read, set for the whole site."""
    common = f"Domain={SITE}; Secure; SameSite=Lax; Max-Age=3600"
    return [
        f"__Secure-silentauth-refresh={refresh}; Path=/auth; HttpOnly; {common}",
        f"silentauth-refresh={refresh}; Path=/auth; HttpOnly; {common}",
        f"silentauth-csrf={csrf}; Path=/; {common}",
        f"__Secure-silentauth-csrf={csrf}; Path=/; {common}",
    ]


def watch_csp(page: Any) -> list[str]:
    """Console lines in which Chromium reports a blocked resource or inline code."""
    seen: list[str] = []
    page.on("console", lambda m: seen.append(m.text) if "Content Security Policy" in m.text else None)
    return seen


def open_demo(context: Any, url: str) -> Any:
    page = context.new_page()
    page.goto(url + "/")
    page.wait_for_function("() => window.demo && window.demo.auth.state !== 'unknown'", timeout=10_000)
    return page


ME = """async () => {
    try {
        const r = await demo.auth.fetch("/api/me");
        return { status: r.status, body: r.ok ? await r.json() : null };
    } catch (e) {
        return { status: 0, error: e.name };
    }
}"""


def test_cookies_tossed_from_a_sibling_host_do_not_sign_the_victim_in_as_the_attacker(
    sites: Sites, cert: Certificate
) -> None:
    refresh, csrf = attacker_session(sites.app_url, cert)
    sites.attacker.cookies = tossed_cookies(refresh, csrf)
    context = sites.browser.new_context()
    try:
        # The victim, logged out, passes by the attacker's page: the jar takes his cookies.
        evil = context.new_page()
        evil.goto(sites.evil_url + "/toss")
        planted = {c["name"] for c in context.cookies() if c["domain"] == f".{SITE}"}
        assert planted == {"__Secure-silentauth-refresh", "silentauth-refresh", "silentauth-csrf", "__Secure-silentauth-csrf"}

        page = open_demo(context, sites.app_url)
        violations = watch_csp(page)
        me = page.evaluate(ME)
        assert me.get("body") is None or me["body"].get("username") != "mallory", me
        assert page.evaluate("demo.auth.state") == "anonymous"
        assert page.is_visible("#login-view")
        # Even a page script that sends the tossed proof itself gets nothing: the browser
        # carries the tossed refresh cookies along, and the server reads none of them.
        direct = page.evaluate(
            """(proof) => fetch("/auth/refresh", { method: "POST", headers: { "X-CSRF-Token": proof } })
                .then((r) => r.status)""",
            csrf,
        )
        assert direct == 400

        # The victim's own login and reload work over TLS with the tossed cookies still there.
        page.fill("#login-form input[name=username]", "alice")
        page.fill("#login-form input[name=password]", "secret")
        page.click("#login-form button[type=submit]")
        page.wait_for_selector("#app-view:not([hidden])", timeout=10_000)
        page.reload()
        page.wait_for_function("() => window.demo && window.demo.auth.state !== 'unknown'", timeout=10_000)
        me = page.evaluate(ME)
        assert me["status"] == 200 and me["body"]["username"] == "alice", me
        assert violations == []
    finally:
        context.close()


def test_a_sibling_host_cannot_frame_the_demo_page(sites: Sites) -> None:
    sites.attacker.framed_url = sites.app_url + "/"
    context = sites.browser.new_context()
    try:
        page = context.new_page()
        page.goto(sites.evil_url + "/frame")
        page.wait_for_load_state("load")
        control = page.frame_locator("#control").locator("h1")
        assert control.inner_text(timeout=5_000) == "control frame"  # frames do render here
        victim = page.query_selector("#victim").content_frame()
        # Chromium replaces a refused frame with its error page: none of the demo renders.
        assert victim.url.startswith("chrome-error://"), victim.url
        assert victim.query_selector("#login-form") is None
        assert victim.query_selector("#logout") is None
    finally:
        context.close()


def test_demo_page_and_static_files_carry_the_strict_policy(sites: Sites, cert: Certificate) -> None:
    port = sites.app_url.rsplit(":", 1)[1]
    for path in ("/", "/static/demo.js", "/static/silentauth.js", "/static/demo.css"):
        r = httpx.get(f"https://127.0.0.1:{port}{path}", headers={"Host": f"{APP_HOST}:{port}"}, verify=str(cert.cafile))
        assert r.status_code == 200, path
        csp = r.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert r.headers["x-frame-options"] == "DENY" and r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["referrer-policy"] == "same-origin"
