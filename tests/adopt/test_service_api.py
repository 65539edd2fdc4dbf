"""Sessions the application starts itself: in process and over ``/auth/service/*``."""

from __future__ import annotations

from typing import Any

import pytest

from silentauth.core.tokens import decode_unverified
from silentauth.server.app_sessions import start_session
from tests.adopt.plugins import Directory
from tests.conftest import Service, ServiceFactory

pytestmark = pytest.mark.anyio

CREDENTIAL = "s" * 40


def service_auth(credential: str = CREDENTIAL) -> dict[str, str]:
    return {"Authorization": f"Service {credential}"}


async def start(service_factory: ServiceFactory, **overrides: Any) -> Service:
    directory = Directory()
    svc: Service = await service_factory(
        app_options={"claims": directory.claims}, service_credential=CREDENTIAL, **overrides
    )
    return svc


async def test_http_start_list_end(service_factory: ServiceFactory) -> None:
    svc = await start(service_factory)
    r = await svc.client.post(
        "/auth/service/sessions",
        json={"user_id": "u-100", "username": "carol", "device": "otp-login", "remember": False},
        headers=service_auth(),
    )
    assert r.status_code == 201, r.text
    body = r.json()
    claims = decode_unverified(body["access_token"])[1]
    assert claims["sub"] == "u-100" and claims["roles"] == ["admin", "staff"]
    assert any(c.startswith("silentauth-refresh=") and "HttpOnly" in c for c in body["set_cookie"])
    # The started session refreshes as any other.
    assert (await svc.refresh(body["refresh_token"])).status_code == 200
    listed = (await svc.client.get("/auth/service/users/u-100/sessions", headers=service_auth())).json()
    assert [s["id"] for s in listed] == [body["session_id"]] and listed[0]["user_agent"] == "otp-login"
    r = await svc.client.delete(f"/auth/service/sessions/{body['session_id']}", headers=service_auth())
    assert r.status_code == 204
    assert (await svc.client.get("/api/me", headers={"Authorization": f"Bearer {body['access_token']}"})).status_code == 401
    r = await svc.client.delete(f"/auth/service/sessions/{body['session_id']}", headers=service_auth())
    assert r.status_code == 404


async def test_remember_me_chooses_the_session_lifetime(service_factory: ServiceFactory) -> None:
    svc = await start(service_factory, short_session_max_age=3600, session_max_age=30 * 86400)
    now = svc.clock()
    short = await start_session(svc.runtime, "u-1", remember=False)
    long = await start_session(svc.runtime, "u-1", remember=True)
    rows = {s.id: s for s in await svc.runtime.service.sessions("u-1")}
    assert rows[short.session_id].expires_at == pytest.approx(now + 3600)
    assert rows[long.session_id].expires_at == pytest.approx(now + 30 * 86400)
    # The password grant and the browser login take the same choice.
    await svc.add_user()
    await svc.password_grant(remember="false")
    r = await svc.client.post("/auth/login", json={"username": "alice", "password": "secret", "remember": True})
    assert r.status_code == 200
    user = (await svc.runtime.users.get("alice"))
    assert user is not None
    ages = sorted(round(s.expires_at - now) for s in await svc.runtime.service.sessions(user.id))
    assert ages == [3600, 30 * 86400]
    bad = await svc.client.post("/auth/login", json={"username": "alice", "password": "secret", "remember": "x"})
    assert bad.status_code == 400


async def test_revoke_user_sessions_and_password_change(service_factory: ServiceFactory) -> None:
    svc = await start(service_factory)
    a, b, c = [await start_session(svc.runtime, "u-7") for _ in range(3)]
    r = await svc.client.delete(
        f"/auth/service/users/u-7/sessions?reason=password_change&keep={a.session_id}", headers=service_auth()
    )
    assert r.json() == {"revoked": 2}
    assert (await svc.refresh(a.refresh_token)).status_code == 200
    for other in (b, c):
        assert (await svc.refresh(other.refresh_token)).status_code == 400
    assert svc.metric("silentauth_sessions_revoked_total", reason="password_change") == 2
    r = await svc.client.delete("/auth/service/users/u-7/sessions", headers=service_auth())
    assert r.json() == {"revoked": 1}


async def test_a_user_token_never_reaches_the_service_api(service_factory: ServiceFactory) -> None:
    svc = await start(service_factory)
    await svc.add_user()
    user = await svc.password_grant()
    for headers in (
        {"Authorization": f"Bearer {user['access_token']}"},
        {"Authorization": f"Service {user['access_token']}"},
        {"Authorization": f"Bearer {CREDENTIAL}"},
        service_auth(CREDENTIAL[:-1] + "x"),
        {},
    ):
        r = await svc.client.post("/auth/service/sessions", json={"user_id": "u-1"}, headers=headers)
        assert r.status_code == 401 and r.json()["error"] == "invalid_client", (headers, r.text)
        r = await svc.client.get("/auth/service/users/u-1/sessions", headers=headers)
        assert r.status_code == 401


async def test_without_a_credential_the_service_api_does_not_exist(service_factory: ServiceFactory) -> None:
    svc: Service = await service_factory()
    r = await svc.client.post("/auth/service/sessions", json={"user_id": "u-1"}, headers=service_auth())
    assert r.status_code == 404


@pytest.mark.parametrize(
    "body",
    [{}, {"user_id": ""}, {"user_id": 5}, {"user_id": "x" * 300}, {"user_id": "a\nb"}, {"user_id": "u", "remember": "maybe"},
     {"user_id": "u", "scope": "root"}, {"user_id": "u", "device": ["x"]}],
)
async def test_bad_input_is_a_4xx(service_factory: ServiceFactory, body: dict[str, Any]) -> None:
    svc = await start(service_factory)
    r = await svc.client.post("/auth/service/sessions", json=body, headers=service_auth())
    assert 400 <= r.status_code < 500, r.text


async def test_a_short_service_credential_is_refused(service_factory: ServiceFactory) -> None:
    from silentauth.errors import ConfigError

    with pytest.raises(ConfigError, match="SERVICE_CREDENTIAL"):
        await service_factory(service_credential="short")
