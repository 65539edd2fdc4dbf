"""Sessions per device, logout-all, RFC 7009 revocation, revocation latency."""

from __future__ import annotations

import time

import anyio
import pytest

from tests.conftest import Service, ServiceFactory

pytestmark = pytest.mark.anyio


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_each_login_is_a_device_session(service: Service) -> None:
    a = await service.password_grant()
    await service.client.post(
        "/auth/token",
        data={"grant_type": "password", "username": "alice", "password": "secret"},
        headers={"User-Agent": "phone/1.0"},
    )
    r = await service.client.get("/auth/sessions", headers=bearer(a["access_token"]))
    sessions = r.json()
    assert len(sessions) == 2
    assert [s["current"] for s in sessions] == [True, False]
    assert sessions[1]["user_agent"] == "phone/1.0"
    assert [s["ip"] for s in sessions] == ["127.0.0.1", "127.0.0.1"]  # the client's address
    assert [s["client_id"] for s in sessions] == ["native", "native"]  # no client_id sent
    assert {"id", "created", "last_used", "user_agent", "current"} <= set(sessions[0])


async def test_delete_session_logs_that_device_out(service: Service) -> None:
    laptop = await service.password_grant()
    phone = await service.password_grant()
    sessions = (await service.client.get("/auth/sessions", headers=bearer(laptop["access_token"]))).json()
    phone_id = next(s["id"] for s in sessions if not s["current"])
    r = await service.client.delete(f"/auth/sessions/{phone_id}", headers=bearer(laptop["access_token"]))
    assert r.status_code == 204
    assert (await service.client.get("/api/me", headers=bearer(phone["access_token"]))).status_code == 401
    assert (await service.refresh(phone["refresh_token"])).status_code == 400
    assert (await service.client.get("/api/me", headers=bearer(laptop["access_token"]))).status_code == 200
    assert service.metric("silentauth_sessions_revoked_total", reason="device") == 1


async def test_cannot_delete_another_users_session(service: Service) -> None:
    await service.add_user("bob", "pw")
    alice = await service.password_grant()
    bob = await service.password_grant("bob", "pw")
    bob_sid = (await service.client.get("/api/me", headers=bearer(bob["access_token"]))).json()["session_id"]
    r = await service.client.delete(f"/auth/sessions/{bob_sid}", headers=bearer(alice["access_token"]))
    assert r.status_code == 404 and r.json()["error"] == "not_found"
    # Rendered by the one OAuth error renderer, so never cached (RFC 6749 §5.1).
    assert r.headers["cache-control"] == "no-store"
    assert (await service.client.get("/api/me", headers=bearer(bob["access_token"]))).status_code == 200


async def test_logout_all_revokes_every_session_of_the_user(service: Service) -> None:
    grants = [await service.password_grant() for _ in range(3)]
    r = await service.client.post("/auth/logout-all", headers=bearer(grants[0]["access_token"]))
    assert r.status_code == 204
    for g in grants:
        assert (await service.client.get("/api/me", headers=bearer(g["access_token"]))).status_code == 401
        assert (await service.refresh(g["refresh_token"])).status_code == 400
    assert service.metric("silentauth_sessions_revoked_total", reason="logout_all") == 3


async def test_bearer_logout_ends_only_this_session(service: Service) -> None:
    a, b = await service.password_grant(), await service.password_grant()
    assert (await service.client.post("/auth/logout", headers=bearer(a["access_token"]))).status_code == 204
    assert (await service.client.get("/api/me", headers=bearer(a["access_token"]))).status_code == 401
    assert (await service.client.get("/api/me", headers=bearer(b["access_token"]))).status_code == 200


@pytest.mark.parametrize("which", ["refresh_token", "access_token"])
async def test_rfc7009_revoke_ends_the_session(service: Service, which: str) -> None:
    g = await service.password_grant()
    r = await service.client.post("/auth/revoke", data={"token": g[which], "token_type_hint": which})
    assert r.status_code == 200
    assert (await service.refresh(g["refresh_token"])).status_code == 400
    assert (await service.client.get("/api/me", headers=bearer(g["access_token"]))).status_code == 401


async def test_rfc7009_revoke_of_unknown_token_is_200(service: Service) -> None:
    r = await service.client.post("/auth/revoke", data={"token": "nonsense"})
    assert r.status_code == 200
    assert (await service.client.post("/auth/revoke", data={})).status_code == 400


async def test_protected_routes_answer_rfc6750(service: Service) -> None:
    r = await service.client.get("/api/me")
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    r = await service.client.get("/api/me", headers=bearer("x.y.z"))
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith('Bearer error="invalid_token"')
    r = await service.client.get("/auth/sessions", headers={"Authorization": "Basic YTpi"})
    assert r.status_code == 401


async def test_revocation_on_another_instance_reaches_this_one_within_a_second(
    service_factory: ServiceFactory,
) -> None:
    a: Service = await service_factory()
    await a.add_user()
    b: Service = await service_factory(settings=a.runtime.settings)  # same SQLite file
    grant = await a.password_grant()
    assert (await b.client.get("/api/me", headers=bearer(grant["access_token"]))).status_code == 200
    async with anyio.create_task_group() as tg:
        tg.start_soon(b.runtime.revocations.follow, 0.1)
        started = time.monotonic()
        await a.client.post("/auth/logout", headers=bearer(grant["access_token"]))
        while (await b.client.get("/api/me", headers=bearer(grant["access_token"]))).status_code == 200:
            assert time.monotonic() - started < 1.0, "revocation did not propagate within 1 s"
            await anyio.sleep(0.02)
        tg.cancel_scope.cancel()


async def test_step_up_demands_a_recent_login(service_factory: ServiceFactory) -> None:
    svc: Service = await service_factory(step_up_max_age=300)
    await svc.add_user()
    g = await svc.password_grant()
    assert (await svc.client.post("/api/payments", headers=bearer(g["access_token"]))).status_code == 200
    svc.clock.advance(301)
    fresh = (await svc.refresh(g["refresh_token"])).json()  # refresh keeps the old auth_time
    r = await svc.client.post("/api/payments", headers=bearer(fresh["access_token"]))
    assert r.status_code == 401
    assert 'error="insufficient_user_authentication"' in r.headers["www-authenticate"]
    assert "max_age=300" in r.headers["www-authenticate"]
    relogin = await svc.password_grant()
    assert (await svc.client.post("/api/payments", headers=bearer(relogin["access_token"]))).status_code == 200


async def test_echo_returns_the_body_unchanged(service: Service) -> None:
    g = await service.password_grant()
    doc = {"title": "long form", "body": "x" * 50_000, "n": [1, 2, 3]}
    r = await service.client.post("/api/echo", json=doc, headers=bearer(g["access_token"]))
    assert r.json() == doc
