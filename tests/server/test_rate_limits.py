"""Rate limits: 429 + Retry-After, per user+address, grace retries stay free."""

from __future__ import annotations

import httpx
import pytest

from silentauth.settings import Rate
from tests.conftest import Service, ServiceFactory

pytestmark = pytest.mark.anyio


async def bad_login(svc: Service) -> int:
    r = await svc.client.post("/auth/token", data={"grant_type": "password", "username": "alice", "password": "bad"})
    return r.status_code


async def test_login_failures_are_limited_with_retry_after(service_factory: ServiceFactory) -> None:
    svc: Service = await service_factory(rate_limit_login=Rate(3, 60))
    await svc.add_user()
    assert [await bad_login(svc) for _ in range(3)] == [400, 400, 400]
    r = await svc.client.post("/auth/token", data={"grant_type": "password", "username": "alice", "password": "secret"})
    assert r.status_code == 429
    assert r.json()["error"] == "rate_limited"
    assert 1 <= int(r.headers["retry-after"]) <= 60
    assert svc.metric("silentauth_login_total", outcome="rate_limited") == 1
    svc.clock.advance(61)
    assert (await svc.password_grant())["access_token"]


async def test_attacker_address_does_not_lock_out_the_real_user(
    service_factory: ServiceFactory, tmp_path: object
) -> None:
    attacker: Service = await service_factory(rate_limit_login=Rate(3, 60), client_ip="203.0.113.9")
    await attacker.add_user()
    user: Service = await service_factory(settings=attacker.runtime.settings, client_ip="198.51.100.7")
    # Different processes would not share the embedded counters; share the store's.
    user.runtime.store = attacker.runtime.store
    for _ in range(20):
        await bad_login(attacker)
    assert await bad_login(attacker) == 429
    assert (await user.password_grant())["access_token"]


async def test_successful_logins_do_not_count(service_factory: ServiceFactory) -> None:
    svc: Service = await service_factory(rate_limit_login=Rate(2, 60))
    await svc.add_user()
    for _ in range(5):
        await svc.password_grant()


async def test_refresh_rotations_per_session_are_limited(service_factory: ServiceFactory) -> None:
    svc: Service = await service_factory(rate_limit_refresh=Rate(3, 60))
    await svc.add_user()
    token = (await svc.password_grant())["refresh_token"]
    for _ in range(3):
        token = (await svc.refresh(token)).json()["refresh_token"]
    r = await svc.refresh(token)
    assert r.status_code == 429 and "retry-after" in r.headers


async def test_grace_retries_are_not_rate_limited(service_factory: ServiceFactory) -> None:
    svc: Service = await service_factory(rate_limit_refresh=Rate(2, 60))
    await svc.add_user()
    token = (await svc.password_grant())["refresh_token"]
    for _ in range(20):
        assert (await svc.refresh(token)).status_code == 200
    assert svc.metric("silentauth_refresh_total", outcome="grace") == 19


async def test_invalid_refresh_tokens_are_limited_per_address(service_factory: ServiceFactory) -> None:
    svc: Service = await service_factory(rate_limit_refresh=Rate(1, 60))
    codes = [(await svc.refresh(f"v1.{'a' * 22}.{i}.{'b' * 43}")).status_code for i in range(12)]
    assert codes[:10] == [400] * 10 and codes[-1] == 429


async def test_failed_refreshes_are_limited_per_client_address(service_factory: ServiceFactory) -> None:
    svc: Service = await service_factory(rate_limit_refresh=Rate(1, 60))  # x10 for failures
    bogus = "v1.AAAAAAAAAAAAAAAAAAAAAA.1." + "A" * 43
    codes = [(await svc.refresh(bogus)).status_code for _ in range(11)]
    assert codes == [400] * 10 + [429]
    transport = httpx.ASGITransport(app=svc.app, client=("198.51.100.7", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as neighbour:
        r = await neighbour.post("/auth/token", data={"grant_type": "refresh_token", "refresh_token": bogus})
    assert r.status_code == 400  # another address is not locked out
