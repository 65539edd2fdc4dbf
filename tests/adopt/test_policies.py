"""Session policies: a per-user session limit, single-session mode, lifetimes per user or client."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from silentauth.core.hooks import Lifetimes, TokenContext
from silentauth.core.tokens import decode_unverified
from tests.adopt.plugins import Directory
from tests.conftest import Service, ServiceFactory

pytestmark = pytest.mark.anyio


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def logins(svc: Service, n: int) -> list[dict[str, Any]]:
    out = []
    for _ in range(n):
        out.append(await svc.password_grant())
        svc.clock.advance(1)  # distinct creation times: "oldest" is well defined
    return out


async def test_the_oldest_session_ends_when_the_limit_is_reached(service_factory: ServiceFactory) -> None:
    svc: Service = await service_factory(max_sessions_per_user=2)
    await svc.add_user()
    first, second, third = await logins(svc, 3)
    assert (await svc.refresh(first["refresh_token"])).status_code == 400
    assert (await svc.client.get("/api/me", headers=bearer(first["access_token"]))).status_code == 401
    for g in (second, third):
        assert (await svc.refresh(g["refresh_token"])).status_code == 200
    assert svc.metric("silentauth_sessions_revoked_total", reason="policy") == 1


async def test_single_session_mode_keeps_only_the_newest(service_factory: ServiceFactory) -> None:
    svc: Service = await service_factory(single_session=True)
    await svc.add_user()
    await svc.add_user("bob", "pw")
    bob = await svc.password_grant("bob", "pw")
    grants = await logins(svc, 3)
    for g in grants[:-1]:
        assert (await svc.refresh(g["refresh_token"])).status_code == 400
    assert (await svc.refresh(grants[-1]["refresh_token"])).status_code == 200
    assert (await svc.refresh(bob["refresh_token"])).status_code == 200  # other users are untouched


async def lifetimes(context: TokenContext) -> Lifetimes | None:
    """An administrator: 5-minute tokens, a 1-day session; a kiosk: 1 hour, no refresh."""
    if context.client_id == "kiosk":
        return Lifetimes(access_ttl=3600, session_max_age=3600, refresh=False)
    if context.user_id == "u-100":
        return Lifetimes(access_ttl=300, session_max_age=86400)
    return None


async def test_lifetimes_per_user_and_per_client(service_factory: ServiceFactory) -> None:
    svc: Service = await service_factory(
        app_options={"identity": Directory(), "lifetimes": lifetimes}, access_ttl=900, session_max_age=30 * 86400
    )
    now = int(svc.clock())
    admin = await svc.password_grant("carol", "c-pass")
    assert admin["expires_in"] == 300
    (session,) = await svc.runtime.service.sessions("u-100")
    assert session.expires_at == pytest.approx(now + 86400)
    r = await svc.refresh(admin["refresh_token"])
    assert r.json()["expires_in"] == 300  # at every refresh, not only the first token

    user = await svc.password_grant("dave", "d-pass")
    assert user["expires_in"] == 900
    (session,) = await svc.runtime.service.sessions("u-200")
    assert session.expires_at == pytest.approx(now + 30 * 86400)

    await svc.runtime.clients.register("kiosk", confidential=False)  # only registered clients get tokens
    kiosk = await svc.password_grant("dave", "d-pass", client_id="kiosk")
    assert kiosk["expires_in"] == 3600 and "refresh_token" not in kiosk
    assert decode_unverified(kiosk["access_token"])[1]["client_id"] == "kiosk"


async def test_the_per_scope_policy_still_applies_under_a_lifetime_hook(service_factory: ServiceFactory) -> None:
    svc: Service = await service_factory(
        app_options={"identity": Directory(), "lifetimes": lifetimes},
        token_policy={"payments": 120},
        scope="openid api payments",
    )
    grant = await svc.password_grant("carol", "c-pass", scope="payments")
    assert grant["expires_in"] == 120  # the shorter of the hook's 300 and the scope's 120


async def test_a_broken_lifetime_hook_is_a_clean_503(
    service_factory: ServiceFactory, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(context: TokenContext) -> Any:
        return {"access_ttl": 5}  # not a Lifetimes

    svc: Service = await service_factory(app_options={"identity": Directory(), "lifetimes": broken})
    caplog.set_level(logging.ERROR, logger="silentauth.hooks")
    r = await svc.client.post(
        "/auth/token", data={"grant_type": "password", "username": "carol", "password": "c-pass"}
    )
    assert r.status_code == 503
    assert "lifetime hook returned dict, not Lifetimes" in caplog.text


async def test_password_change_in_process_ends_the_other_devices(service_factory: ServiceFactory) -> None:
    svc: Service = await service_factory()
    await svc.add_user()
    laptop, phone, tablet = await logins(svc, 3)
    here = svc.runtime.authenticator.check(laptop["access_token"]).session_id
    user = await svc.runtime.users.get("alice")
    assert user is not None
    assert await svc.runtime.service.password_changed(user.id, keep_session=here) == 2
    assert (await svc.refresh(laptop["refresh_token"])).status_code == 200
    for g in (phone, tablet):
        assert (await svc.client.get("/api/me", headers=bearer(g["access_token"]))).status_code == 401
