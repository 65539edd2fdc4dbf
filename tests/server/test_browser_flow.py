"""Browser mode: HttpOnly refresh cookie, session-bound CSRF proof, origin checks."""

from __future__ import annotations

import pytest

from silentauth.core.rotation_rules import RETRY_WINDOW
from tests.conftest import Service, ServiceFactory

pytestmark = pytest.mark.anyio

REFRESH = "silentauth-refresh"
CSRF = "silentauth-csrf"


async def login(svc: Service) -> dict[str, str]:
    r = await svc.client.post("/auth/login", json={"username": "alice", "password": "secret"})
    assert r.status_code == 200, r.text
    return dict(r.json())


async def test_login_puts_refresh_token_only_in_an_httponly_cookie(service: Service) -> None:
    r = await service.client.post("/auth/login", json={"username": "alice", "password": "secret"})
    body = r.json()
    assert "refresh_token" not in body
    assert set(body) == {"access_token", "token_type", "expires_in", "scope", "csrf_token"}
    cookies = {c.split("=", 1)[0]: c for c in r.headers.get_list("set-cookie")}
    refresh = cookies[REFRESH].lower()
    assert "httponly" in refresh and "samesite=strict" in refresh and "path=/auth" in refresh
    assert "httponly" not in cookies[CSRF].lower()


async def test_secure_cookies_by_default(service_factory: ServiceFactory) -> None:
    svc: Service = await service_factory(cookie_secure=True)
    await svc.add_user()
    r = await svc.client.post("/auth/login", json={"username": "alice", "password": "secret"})
    cookies = {c.split("=", 1)[0]: c.lower() for c in r.headers.get_list("set-cookie")}
    refresh = cookies["__Host-silentauth-refresh"]
    assert "secure" in refresh and "path=/;" in refresh and "domain" not in refresh
    assert "secure" in cookies["__Host-silentauth-csrf"] and "path=/;" in cookies["__Host-silentauth-csrf"]


async def test_refresh_with_cookie_and_csrf_header_rotates_the_cookie(service: Service) -> None:
    first = await login(service)
    old_cookie = service.client.cookies.get(REFRESH)
    r = await service.client.post("/auth/refresh", headers={"X-CSRF-Token": first["csrf_token"]})
    assert r.status_code == 200
    assert r.json()["access_token"] != first["access_token"]
    assert service.client.cookies.get(REFRESH) != old_cookie
    assert service.metric("silentauth_refresh_total", outcome="rotated") == 1


async def test_refresh_without_csrf_proof_is_403(service: Service) -> None:
    await login(service)
    r = await service.client.post("/auth/refresh")
    assert r.status_code == 403 and r.json()["error"] == "access_denied"
    assert service.metric("silentauth_refresh_total", outcome="rotated") == 0


async def test_csrf_proof_of_another_session_is_refused(service: Service) -> None:
    other = await login(service)
    service.client.cookies.clear()
    await login(service)
    r = await service.client.post("/auth/refresh", headers={"X-CSRF-Token": other["csrf_token"]})
    assert r.status_code == 403


async def test_cross_origin_refresh_is_refused_even_with_the_proof(service: Service) -> None:
    first = await login(service)
    r = await service.client.post(
        "/auth/refresh", headers={"X-CSRF-Token": first["csrf_token"], "Origin": "https://evil.example"}
    )
    assert r.status_code == 403


async def test_failed_refresh_leaves_the_cookie_jar_alone(service: Service) -> None:
    """A late 400 for an old session must not wipe a newer login's cookie (other tab)."""
    grant = await login(service)
    stale = service.client.cookies.get(REFRESH)
    for _ in range(2):  # the stale token's successor is used: its replay is refused
        await service.client.post("/auth/refresh", headers={"X-CSRF-Token": grant["csrf_token"]})
    service.clock.advance(RETRY_WINDOW + 1)
    service.client.cookies.set(REFRESH, stale or "", path="/auth")
    r = await service.client.post("/auth/refresh", headers={"X-CSRF-Token": grant["csrf_token"]})
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    assert r.headers.get_list("set-cookie") == []


async def test_logout_with_cookie_revokes_session_and_clears_cookies(service: Service) -> None:
    grant = await login(service)
    r = await service.client.post("/auth/logout", headers={"X-CSRF-Token": grant["csrf_token"]})
    assert r.status_code == 204
    me = await service.client.get("/api/me", headers={"Authorization": f"Bearer {grant['access_token']}"})
    assert me.status_code == 401
    assert service.metric("silentauth_sessions_revoked_total", reason="logout") == 1


async def test_logout_with_cookie_but_no_csrf_is_refused(service: Service) -> None:
    grant = await login(service)
    r = await service.client.post("/auth/logout")
    assert r.status_code == 403
    me = await service.client.get("/api/me", headers={"Authorization": f"Bearer {grant['access_token']}"})
    assert me.status_code == 200


@pytest.mark.parametrize(
    "body",
    [b"", b"[]", b"null", b'{"username": 1, "password": "x"}', b"\xff\xfe", b'{"username": "alice"}', b"{" * 10000],
)
async def test_malformed_login_bodies_are_400(service: Service, body: bytes) -> None:
    r = await service.client.post("/auth/login", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 400
    assert r.json()["error"] == "invalid_request"
