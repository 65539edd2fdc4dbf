"""Behind a real nginx that terminates TLS, in front of two instances on one shared store.

The deployment the README describes, on loopback: Debian's nginx on https,
two ``silentauth serve`` processes on plain HTTP behind it, PostgreSQL and then
Redis as the store, ``TRUSTED_PROXIES=127.0.0.1`` and ``ISSUER`` = the public
https URL. Clients on one machine are told apart by their source address:
sockets bound to 127.0.0.2 and 127.0.0.3 reach nginx from those addresses,
and nginx forwards them in ``X-Forwarded-For``.

What it shows: the Python client logs in, calls the API on both instances and
refreshes through nginx; Chromium logs in with the browser client over TLS,
gets Secure cookies, refreshes from the cookie after a reload and calls the
API; the session records the client's address, not nginx's; a client locked
out by failed logins does not lock out its neighbour, and cannot claim the
neighbour's address, neither through nginx nor by going around it.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from silentauth.client import TokenAuth
from silentauth.clock import FakeClock
from tests.conftest import make_settings, metric_value, need_binary, seed_users
from tests.e2e.nginx import Nginx
from tests.e2e.test_browser import CHROMIUM_ARGS
from tests.stores.servers import (
    SECRET_KEY,
    PostgresServer,
    RedisServer,
    ServiceProcess,
    find_binary,
    service_env,
)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

CLIENT_A, CLIENT_B = "127.0.0.2", "127.0.0.3"
ACCESS_TTL = 60
USERS = {"alice": "secret", "carol": "secret", "dave": "secret"}


@dataclass
class Deployment:
    nginx: Nginx
    services: list[ServiceProcess]

    @property
    def url(self) -> str:
        return self.nginx.url

    def metric(self, name: str, **labels: str) -> float:
        """Summed over the instances, read from each directly."""
        return sum(metric_value(httpx.get(f"{s.url}/metrics").text, name, **labels) for s in self.services)


def from_address(address: str) -> httpx.HTTPTransport:
    """A transport whose sockets leave from ``address`` (any 127/8 address is local)."""
    return httpx.HTTPTransport(local_address=address, verify=False)


@pytest.fixture(scope="module", params=["postgres", "redis"])
def store_url(request: pytest.FixtureRequest) -> Iterator[str]:
    server: PostgresServer | RedisServer
    if request.param == "postgres":
        need_binary("initdb", find_binary("initdb") or "initdb")
        need_binary("postgres", find_binary("postgres") or "postgres")
        server = PostgresServer()
        server.init()
    else:
        need_binary("redis-server")
        server = RedisServer()
    try:
        server.start()
        yield server.url if isinstance(server, PostgresServer) else server.url(0)
    finally:
        server.stop()


@pytest.fixture(scope="module")
def deployment(store_url: str) -> Iterator[Deployment]:
    nginx_binary = need_binary("nginx", "/usr/sbin/nginx")
    root = Path(tempfile.mkdtemp(prefix="silentauth-nginx-"))
    nginx = Nginx(nginx_binary, root)
    seed_users(make_settings(root, database_url=store_url, secret_key=SECRET_KEY, issuer=nginx.url), USERS)
    env = service_env(
        store_url,
        issuer=nginx.url,
        trusted_proxies="127.0.0.1",
        cookie_secure="true",
        rate_limit_login="3/minute",
        access_ttl=str(ACCESS_TTL),
    )
    services = [ServiceProcess(env), ServiceProcess(env)]
    try:
        for s in services:
            s.start()
        for s in services:
            s.wait_ready()
        nginx.upstreams = [s.port for s in services]
        nginx.start()
        yield Deployment(nginx, services)
    finally:
        nginx.stop()
        logs = [s.stop() for s in services]
        shutil.rmtree(root, ignore_errors=True)
        assert not any("Traceback" in log for log in logs), logs


def test_python_client_logs_in_and_refreshes_through_nginx(deployment: Deployment) -> None:
    clock = FakeClock(time.time())
    auth = TokenAuth(f"{deployment.url}/auth/token", clock=clock, transport=from_address(CLIENT_A))
    auth.login("alice", "secret")
    first = auth.tokens
    assert first is not None
    with httpx.Client(auth=auth, transport=from_address(CLIENT_A), base_url=deployment.url) as api:
        # nginx alternates the instances: each accepts the other's tokens (one ISSUER).
        assert [api.get("/api/me").status_code for _ in range(4)] == [200] * 4
        clock.advance(ACCESS_TTL)  # the client's clock: a proactive refresh is due
        me = api.get("/api/me")
        assert me.status_code == 200 and me.json()["username"] == "alice"
        assert auth.tokens is not None and auth.tokens.refresh_token != first.refresh_token
        sessions = api.get("/auth/sessions").json()
    # The address the session records is the client's, forwarded by nginx.
    assert [s["ip"] for s in sessions if s["current"]] == [CLIENT_A]
    assert deployment.metric("silentauth_refresh_total", outcome="rotated") >= 1
    auth.close()


def test_rate_limits_attribute_failures_to_the_real_client(deployment: Deployment) -> None:
    def login(address: str, password: str, base: str = deployment.url, **headers: str) -> int:
        with httpx.Client(transport=from_address(address)) as c:
            form = {"grant_type": "password", "username": "carol", "password": password}
            return c.post(f"{base}/auth/token", data=form, headers=headers).status_code

    assert [login(CLIENT_A, "wrong") for _ in range(3)] == [400, 400, 400]
    assert login(CLIENT_A, "secret") == 429
    # nginx spread the failures over both instances: the count is the store's, not one instance's.
    for s in deployment.services:
        assert metric_value(httpx.get(f"{s.url}/metrics").text, "silentauth_login_total", outcome="bad_credentials") >= 1
    # Client B, behind the same nginx, is not the one guessing.
    assert login(CLIENT_B, "wrong") == 400
    assert login(CLIENT_B, "secret") == 200
    # A cannot pass for B: nginx appends the real peer to whatever A claims...
    assert login(CLIENT_A, "secret", **{"X-Forwarded-For": CLIENT_B}) == 429
    # ...and going around nginx, A is not a trusted proxy: its header is ignored.
    direct = deployment.services[0].url
    assert login(CLIENT_A, "secret", direct, **{"X-Forwarded-For": CLIENT_B}) == 429


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = need_binary("chromium", "/usr/bin/chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=executable, args=[*CHROMIUM_ARGS, "--ignore-certificate-errors"])
        yield chromium
        chromium.close()


LOGIN = """async () => {
  const { createAuthClient } = await import("/static/silentauth.js");
  window.auth = createAuthClient({ baseUrl: "" });
  await auth.login("dave", "secret");
  const r = await auth.fetch("/api/me");
  return { status: r.status, username: (await r.json()).username, token: await auth.getAccessToken() };
}"""

RESTORE = """async () => {
  const { createAuthClient } = await import("/static/silentauth.js");
  window.auth = createAuthClient({ baseUrl: "" });
  const restored = await auth.restore();
  const r = await auth.fetch("/api/me");
  const sessions = await (await auth.fetch("/auth/sessions")).json();
  return { restored, status: r.status, token: await auth.getAccessToken(), sessions };
}"""


def test_browser_logs_in_and_refreshes_over_tls_through_nginx(deployment: Deployment, browser: Any) -> None:
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(f"{deployment.url}/healthz")
        # Before this fix the login was refused: Origin https://… against a service on http.
        first = page.evaluate(LOGIN)
        assert first["status"] == 200 and first["username"] == "dave"
        cookies = {c["name"]: c for c in context.cookies()}
        assert cookies and all(c["secure"] for c in cookies.values())
        # A reload forgets the in-memory token: the refresh cookie brings the session back.
        page.reload()
        again = page.evaluate(RESTORE)
        assert again["restored"] is True and again["status"] == 200
        assert again["token"] != first["token"]
        # Chromium connects from 127.0.0.1, which is what nginx forwarded.
        assert [s["ip"] for s in again["sessions"] if s["current"]] == ["127.0.0.1"]
    finally:
        context.close()
