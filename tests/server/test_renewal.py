"""Server-pushed renewal: New-Access-Token near expiry, shared by concurrent requests."""

from __future__ import annotations

import anyio
import pytest

from silentauth.core.tokens import decode_unverified
from tests.conftest import Service, ServiceFactory

pytestmark = pytest.mark.anyio


async def test_no_renewal_while_the_token_is_fresh(service: Service) -> None:
    g = await service.password_grant()
    r = await service.client.get("/api/me", headers={"Authorization": f"Bearer {g['access_token']}"})
    assert "new-access-token" not in r.headers


async def test_concurrent_requests_near_expiry_share_one_new_token(service_factory: ServiceFactory) -> None:
    svc: Service = await service_factory(access_ttl=300, renew_within=60)
    await svc.add_user()
    g = await svc.password_grant()
    svc.clock.advance(250)
    seen: list[str] = []

    async def call() -> None:
        r = await svc.client.get("/api/me", headers={"Authorization": f"Bearer {g['access_token']}"})
        assert r.status_code == 200
        seen.append(r.headers["new-access-token"])
        assert "New-Access-Token" in r.headers["access-control-expose-headers"]

    async with anyio.create_task_group() as tg:
        for _ in range(50):
            tg.start_soon(call)
    assert len(set(seen)) == 1
    assert svc.metric("silentauth_renewal_total") == 1
    new_claims = decode_unverified(seen[0])[1]
    old_claims = decode_unverified(g["access_token"])[1]
    assert new_claims["exp"] > old_claims["exp"]
    assert new_claims["sid"] == old_claims["sid"] and new_claims["auth_time"] == old_claims["auth_time"]
    ok = await svc.client.get("/api/me", headers={"Authorization": f"Bearer {seen[0]}"})
    assert ok.status_code == 200


async def test_no_renewal_for_a_revoked_session(service_factory: ServiceFactory) -> None:
    svc: Service = await service_factory(access_ttl=300, renew_within=60)
    await svc.add_user()
    g = await svc.password_grant()
    sid = decode_unverified(g["access_token"])[1]["sid"]
    await svc.runtime.store.revoke_session(sid, "admin", svc.clock())  # store only, not yet in the set
    svc.clock.advance(250)
    r = await svc.client.get("/api/me", headers={"Authorization": f"Bearer {g['access_token']}"})
    assert "new-access-token" not in r.headers


async def test_renewal_never_passes_the_session_limit(service_factory: ServiceFactory) -> None:
    svc: Service = await service_factory(access_ttl=300, renew_within=60, session_max_age=400)
    await svc.add_user()
    g = await svc.password_grant()
    svc.clock.advance(250)
    r = await svc.client.get("/api/me", headers={"Authorization": f"Bearer {g['access_token']}"})
    renewed = r.headers["new-access-token"]
    session_end = svc.clock() - 250 + 400
    assert decode_unverified(renewed)[1]["exp"] <= session_end
    svc.clock.advance(100)  # 350 s: the renewed token already ends with the session
    r = await svc.client.get("/api/me", headers={"Authorization": f"Bearer {renewed}"})
    assert r.status_code == 200 and "new-access-token" not in r.headers


async def test_renew_within_zero_turns_renewal_off(service_factory: ServiceFactory) -> None:
    svc: Service = await service_factory(access_ttl=300, renew_within=0)
    await svc.add_user()
    g = await svc.password_grant()
    svc.clock.advance(299)
    r = await svc.client.get("/api/me", headers={"Authorization": f"Bearer {g['access_token']}"})
    assert "new-access-token" not in r.headers
