"""Claims the application gives a session it starts: in every token of it, under the hook's.

As SuperTokens' ``createNewSession(userId, accessTokenPayload)``: the payload
is kept with the session, so a refresh or a renewal carries it on; the
claims hook (asked at every refresh) still wins a name both give, so a role
change follows the user.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from silentauth.core.tokens import decode_unverified
from silentauth.errors import InvalidClaims, InvalidRequest
from silentauth.server.app_sessions import start_session
from tests.adopt.plugins import Directory
from tests.conftest import Service, ServiceFactory

pytestmark = pytest.mark.anyio

CREDENTIAL = "s" * 40
SERVICE = {"Authorization": f"Service {CREDENTIAL}"}
GIVEN = {"amr": ["otp"], "tenant": "acme", "roles": ["stale-from-login"]}


def claims_of(token: str) -> dict[str, Any]:
    return decode_unverified(token)[1]


async def start(service_factory: ServiceFactory, *, hook: bool) -> tuple[Service, Directory]:
    directory = Directory()
    options = {"claims": directory.claims} if hook else {}
    svc: Service = await service_factory(app_options=options, service_credential=CREDENTIAL)
    return svc, directory


async def test_claims_ride_every_token_and_the_hook_wins(service_factory: ServiceFactory) -> None:
    svc, directory = await start(service_factory, hook=True)
    started = await start_session(svc.runtime, "u-100", claims=GIVEN)
    first = claims_of(started.access_token)
    assert first["amr"] == ["otp"] and first["tenant"] == "acme"
    assert first["roles"] == ["admin", "staff"]  # the hook's answer, not the stale one
    directory.roles["u-100"] = ["staff"]
    r = await svc.refresh(started.refresh_token)
    assert r.status_code == 200, r.text
    after = claims_of(r.json()["access_token"])
    assert (after["amr"], after["tenant"], after["roles"]) == (["otp"], "acme", ["staff"])
    # A server-pushed renewal near the deadline carries them too.
    svc.clock.advance(after["exp"] - svc.clock() - 5)
    renewed = await svc.runtime.service.renew(after)
    assert renewed is not None
    assert claims_of(renewed)["tenant"] == "acme" and claims_of(renewed)["sid"] == started.session_id


async def test_without_a_hook_a_refresh_keeps_the_claims(service_factory: ServiceFactory) -> None:
    # Without hooks a refresh reads nothing before rotating: the claims come from the rotated row.
    svc, _ = await start(service_factory, hook=False)
    started = await start_session(svc.runtime, "u-5", claims={"tenant": "acme", "plan": {"tier": 2}})
    token = started.refresh_token
    for _ in range(3):
        r = await svc.refresh(token)
        assert r.status_code == 200, r.text
        claims = claims_of(r.json()["access_token"])
        assert (claims["tenant"], claims["plan"]) == ("acme", {"tier": 2})
        token = r.json()["refresh_token"]
    plain = await start_session(svc.runtime, "u-5")
    assert "tenant" not in claims_of(plain.access_token)


@pytest.mark.parametrize(
    ("claims", "why"),
    [
        ({"sub": "u-admin"}, "reserved"),
        ({"exp": 9_999_999_999}, "reserved"),
        ({"x": math.nan}, "not JSON"),
        ({"x": {1, 2}}, "not JSON"),
        ({"blob": "x" * 5000}, "CLAIMS_MAX_BYTES"),
        (["admin"], "not a mapping"),
    ],
)
async def test_bad_claims_in_process_raise_and_store_nothing(
    service_factory: ServiceFactory, claims: Any, why: str
) -> None:
    svc, _ = await start(service_factory, hook=True)
    with pytest.raises(InvalidClaims, match=why) as raised:
        await start_session(svc.runtime, "u-9", claims=claims)
    assert isinstance(raised.value, ValueError) and isinstance(raised.value, InvalidRequest)
    assert await svc.runtime.service.sessions("u-9") == []


async def test_http_service_endpoint_takes_claims(service_factory: ServiceFactory) -> None:
    svc, _ = await start(service_factory, hook=False)
    r = await svc.client.post(
        "/auth/service/sessions", json={"user_id": "u-100", "claims": {"tenant": "acme", "amr": ["otp"]}}, headers=SERVICE
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert claims_of(body["access_token"])["tenant"] == "acme"
    refreshed = await svc.refresh(body["refresh_token"])
    assert claims_of(refreshed.json()["access_token"])["amr"] == ["otp"]


@pytest.mark.parametrize(
    "claims",
    [{"iss": "https://evil.example"}, {"scope": "admin"}, ["x"], "tenant=acme", 5, {"big": "y" * 3000}],
)
async def test_http_bad_claims_are_a_400_and_store_nothing(service_factory: ServiceFactory, claims: Any) -> None:
    svc, _ = await start(service_factory, hook=False)
    r = await svc.client.post("/auth/service/sessions", json={"user_id": "u-3", "claims": claims}, headers=SERVICE)
    assert r.status_code == 400, r.text
    assert r.json()["error"] == "invalid_request"
    assert await svc.runtime.service.sessions("u-3") == []
