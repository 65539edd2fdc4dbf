"""The token service mounted inside a FastAPI application, one process, one loop."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends, FastAPI, Response

from silentauth.clock import FakeClock
from silentauth.resource.fastapi import CurrentPrincipal, require_claim
from silentauth.resource.verify import Principal
from silentauth.server.embed import SilentAuth
from tests.adopt.plugins import Directory
from tests.conftest import FAST_PASSWORDS, make_settings

pytestmark = pytest.mark.anyio

Admin = Annotated[Principal, Depends(require_claim("roles", "admin"))]


@dataclass
class Host:
    auth: SilentAuth
    directory: Directory
    client: httpx.AsyncClient
    clock: FakeClock


def host_app(auth: SilentAuth, directory: Directory) -> FastAPI:
    app = FastAPI(lifespan=auth.lifespan)
    auth.install(app)

    @app.post("/login/code")
    async def code_login(body: dict[str, str], response: Response) -> dict[str, Any]:
        # The application's own check (a one-time code), then the session is silentauth's.
        user_id = directory.ids[body["username"]]
        started = await auth.start_session(user_id, username=body["username"], device="otp")
        started.apply(response)
        return {"access_token": started.access_token, "csrf_token": started.csrf_token}

    @app.get("/api/me")
    async def me(p: CurrentPrincipal) -> dict[str, Any]:
        return {"sub": p.subject, "roles": p.claim("roles")}

    @app.get("/api/admin")
    async def admin(p: Admin) -> dict[str, str]:
        return {"ok": p.subject}

    return app


@pytest.fixture
async def host(tmp_path: Path, clock: FakeClock) -> AsyncIterator[Host]:
    directory = Directory()
    auth = SilentAuth(
        make_settings(tmp_path, access_ttl=300),
        prefix="/sa",
        clock=clock,
        passwords=FAST_PASSWORDS,
        identity=directory,
        claims=directory.claims,
        background=False,
    )
    app = host_app(auth, directory)
    async with auth.lifespan(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(
            transport=transport, base_url="http://testserver", headers={"Origin": "http://testserver"}
        ) as client:
            yield Host(auth, directory, client, clock)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_password_grant_under_the_prefix_protects_the_hosts_routes(host: Host) -> None:
    r = await host.client.post(
        "/sa/auth/token", data={"grant_type": "password", "username": "carol", "password": "c-pass"}
    )
    assert r.status_code == 200, r.text
    token = r.json()["access_token"]
    assert (await host.client.get("/api/me", headers=bearer(token))).json() == {
        "sub": "u-100",
        "roles": ["admin", "staff"],
    }
    assert (await host.client.get("/api/admin", headers=bearer(token))).status_code == 200
    assert (await host.client.get("/api/me")).status_code == 401
    # The session API of the mounted service works under the prefix too.
    r = await host.client.get("/sa/auth/sessions", headers=bearer(token))
    assert r.status_code == 200 and len(r.json()) == 1


async def test_a_role_removed_closes_the_route_at_the_next_refresh(host: Host) -> None:
    r = await host.client.post(
        "/sa/auth/token", data={"grant_type": "password", "username": "carol", "password": "c-pass"}
    )
    grant = r.json()
    host.directory.roles["u-100"] = ["staff"]
    assert (await host.client.get("/api/admin", headers=bearer(grant["access_token"]))).status_code == 200
    r = await host.client.post(
        "/sa/auth/token", data={"grant_type": "refresh_token", "refresh_token": grant["refresh_token"]}
    )
    token = r.json()["access_token"]
    r = await host.client.get("/api/admin", headers=bearer(token))
    assert r.status_code == 403 and r.json()["error"] == "insufficient_scope"
    assert "roles" in r.headers["www-authenticate"]


async def test_the_apps_own_login_hands_the_browser_a_session_under_the_prefix(host: Host) -> None:
    r = await host.client.post("/login/code", json={"username": "dave"})
    assert r.status_code == 200
    cookie = next(c for c in r.headers.get_list("set-cookie") if c.startswith("silentauth-refresh="))
    assert "Path=/sa/auth" in cookie and "HttpOnly" in cookie
    csrf = r.json()["csrf_token"]
    # The browser client's refresh: cookie + CSRF header, at baseUrl + /auth/refresh.
    r = await host.client.post("/sa/auth/refresh", headers={"X-CSRF-Token": csrf})
    assert r.status_code == 200, r.text
    token = r.json()["access_token"]
    assert (await host.client.get("/api/me", headers=bearer(token))).json()["sub"] == "u-200"
    # Ending the session through the in-process API is seen at once by the host's routes.
    (session,) = await host.auth.list_sessions("u-200")
    assert await host.auth.end_session(session.id)
    assert (await host.client.get("/api/me", headers=bearer(token))).status_code == 401
    r = await host.client.post("/sa/auth/logout", headers={"X-CSRF-Token": csrf})
    assert r.status_code in (204, 400)


async def test_the_host_gets_renewals_from_the_in_process_service(host: Host) -> None:
    r = await host.client.post(
        "/sa/auth/token", data={"grant_type": "password", "username": "carol", "password": "c-pass"}
    )
    token = r.json()["access_token"]
    host.directory.roles["u-100"] = ["staff"]
    host.clock.advance(300 - 30)  # inside RENEW_WITHIN (60 s)
    r = await host.client.get("/api/me", headers=bearer(token))
    assert r.status_code == 200 and "new-access-token" in r.headers
    # The pushed token went through the claims hook too: the role change is in it.
    pushed = r.headers["new-access-token"]
    assert (await host.client.get("/api/me", headers=bearer(pushed))).json()["roles"] == ["staff"]


def test_a_bad_prefix_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="prefix"):
        SilentAuth(make_settings(tmp_path), prefix="sa/")


async def test_a_mounted_route_gets_one_renewal_header_not_two(host: Host) -> None:
    r = await host.client.post(
        "/sa/auth/token", data={"grant_type": "password", "username": "carol", "password": "c-pass"}
    )
    token = r.json()["access_token"]
    host.clock.advance(300 - 30)
    # The host's bearer middleware and the mounted service's both see /sa/*: one must act.
    r = await host.client.get("/sa/auth/sessions", headers=bearer(token))
    assert r.status_code == 200
    assert len(r.headers.get_list("new-access-token")) == 1
    assert len(r.headers.get_list("access-control-expose-headers")) == 1
