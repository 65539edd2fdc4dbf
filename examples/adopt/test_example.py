"""The example application, driven as its users would: the Python client and cookies.

Everything is real: the application's SQLAlchemy table on SQLite, silentauth's
own SQLite store, the embedded token service, the Python client's refresh.
Only time is a fake clock shared by server and client, so several
access-token lifetimes pass in a moment.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from examples.adopt.app import create_app
from silentauth.client import SessionExpired, TokenAuth
from silentauth.clock import FakeClock
from silentauth.core.passwords import Passwords
from silentauth.settings import Settings

pytestmark = pytest.mark.anyio
ACCESS_TTL = 60
BASE = "http://app.test"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class Running:
    app: FastAPI
    clock: FakeClock
    transport: httpx.ASGITransport

    def device(self) -> TokenAuth:
        """A native client (a laptop, a phone) with its own tokens."""
        return TokenAuth(
            f"{BASE}/sa/auth/token", clock=self.clock, jitter=0.0, async_transport=self.transport
        )

    def client(self, auth: TokenAuth | None = None) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=self.transport, base_url=BASE, auth=auth, headers={"Origin": BASE}
        )


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[Running]:
    clock = FakeClock(time.time())
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'silentauth.db'}",
        secret_key="example-secret-key-with-at-least-32-bytes",
        cookie_secure=False,  # plain http://app.test in these tests
        access_ttl=ACCESS_TTL,
        ttl_jitter=0.0,
        first_token_spread=0.0,
        rate_limit_login=None,
        rate_limit_refresh=None,
        issuer=BASE,
    )
    app = create_app(
        settings,
        f"sqlite:///{tmp_path / 'app.db'}",
        clock=clock,
        scrypt_n=2**4,  # the application's hashing, cheap for tests
        passwords=Passwords(time_cost=1, memory_cost=1024),
        background=False,
    )
    async with app.router.lifespan_context(app):
        users = app.state.users
        await users.add("ada@example.com", "ada-pass", ["admin"])
        await users.add("bob@example.com", "bob-pass")
        yield Running(app, clock, httpx.ASGITransport(app=app, client=("127.0.0.1", 40000)))


async def profile(client: httpx.AsyncClient) -> dict[str, Any]:
    r = await client.get("/api/profile")
    assert r.status_code == 200, r.text
    return dict(r.json())


async def test_native_clients_through_lifetimes_role_change_and_password_change(running: Running) -> None:
    laptop, phone, admin = running.device(), running.device(), running.device()
    await laptop.alogin("bob@example.com", "bob-pass")
    await phone.alogin("bob@example.com", "bob-pass")
    await admin.alogin("ada@example.com", "ada-pass")
    async with running.client(laptop) as bob, running.client(phone) as bobs_phone, running.client(admin) as ada:
        tokens = {laptop.tokens.access_token if laptop.tokens else ""}
        for _ in range(3):  # three access-token lifetimes, each ended by a silent refresh
            running.clock.advance(ACCESS_TTL + 1)
            assert (await profile(bob))["roles"] == []
            assert laptop.tokens is not None
            tokens.add(laptop.tokens.access_token)
        assert len(tokens) == 4

        # A role given by the application shows at bob's next refresh, without a new login.
        assert (await bob.get("/api/admin/report")).status_code == 403
        r = await ada.post("/api/admin/roles", json={"email": "bob@example.com", "roles": ["admin"]})
        assert r.status_code == 204, r.text
        assert (await bob.get("/api/admin/report")).status_code == 403  # the current token predates it
        running.clock.advance(ACCESS_TTL + 1)
        assert (await bob.get("/api/admin/report")).status_code == 200
        # And taken away again: gone at the next refresh.
        await ada.post("/api/admin/roles", json={"email": "bob@example.com", "roles": []})
        running.clock.advance(ACCESS_TTL + 1)
        assert (await bob.get("/api/admin/report")).status_code == 403
        assert (await profile(bobs_phone))["roles"] == []

        # A password change on the laptop logs the phone out; the laptop stays in.
        r = await bob.post("/api/password", json={"old_password": "bob-pass", "new_password": "new-pass"})
        assert r.status_code == 204, r.text
        with pytest.raises(SessionExpired):
            await bobs_phone.get("/api/profile")
        running.clock.advance(ACCESS_TTL + 1)
        assert (await profile(bob))["email"] == "bob@example.com"
        other = running.device()
        with pytest.raises(Exception, match="invalid_grant"):
            await other.alogin("bob@example.com", "bob-pass")
        await other.alogin("bob@example.com", "new-pass")


async def test_one_time_code_login_hands_the_browser_a_session(running: Running) -> None:
    async with running.client() as browser:
        r = await browser.post("/login/code/request", json={"email": "bob@example.com"})
        assert r.status_code == 202
        code = running.app.state.outbox.codes["bob@example.com"][0]
        assert (await browser.post("/login/code", json={"email": "bob@example.com", "code": "000000x"})).status_code == 401
        # A wrong guess used the code up: mail another.
        await browser.post("/login/code/request", json={"email": "bob@example.com"})
        code = running.app.state.outbox.codes["bob@example.com"][0]
        r = await browser.post("/login/code", json={"email": "bob@example.com", "code": code})
        assert r.status_code == 200, r.text
        assert browser.cookies.get("silentauth-refresh") is not None
        csrf = browser.cookies["silentauth-csrf"]
        for _ in range(3):  # the browser client's refresh: cookie + CSRF header, under /sa
            running.clock.advance(ACCESS_TTL + 1)
            r = await browser.post("/sa/auth/refresh", headers={"X-CSRF-Token": csrf})
            assert r.status_code == 200, r.text
            token = r.json()["access_token"]
            me = await browser.get("/api/profile", headers={"Authorization": f"Bearer {token}"})
            # The session claim set at the code login rides every refreshed token.
            assert me.json()["email"] == "bob@example.com" and me.json()["amr"] == ["otp"]
        assert (await browser.post("/login/code", json={"email": "bob@example.com", "code": code})).status_code == 401


async def test_the_login_page_loads_the_browser_client_under_the_prefix(running: Running) -> None:
    async with running.client() as browser:
        page = await browser.get("/")
        assert page.status_code == 200 and "/sa/static/silentauth.js" in page.text
        script = await browser.get("/sa/static/silentauth.js")
        assert script.status_code == 200 and "createAuthClient" in script.text
        r = await browser.post("/login", json={"email": "ada@example.com", "password": "nope"})
        assert r.status_code == 401 and "set-cookie" not in r.headers
        r = await browser.post("/login", json={"email": "ada@example.com", "password": "ada-pass", "remember": False})
        assert r.status_code == 200 and "silentauth-refresh" in r.headers.get("set-cookie", "")
