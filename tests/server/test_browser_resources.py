"""RFC 8707 resources on the browser endpoints: ``/auth/login`` and ``/auth/refresh``.

The JSON login takes ``resource`` as one URI or a list; the cookie refresh takes
an optional JSON body ``{"resource": ...}`` that may narrow the session's
resources (never widen them), and without a body keeps them all.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from silentauth.core.encoding import b64decode
from tests.conftest import Service, ServiceFactory

BILLING, FILES = "https://billing.example", "https://files.example"
ORIGIN = {"Origin": "http://testserver"}
pytestmark = pytest.mark.anyio


def aud(token: str) -> Any:
    return json.loads(b64decode(token.split(".")[1]))["aud"]


@pytest.fixture
async def svc(service_factory: ServiceFactory) -> Service:
    s: Service = await service_factory(resources=(BILLING, FILES))
    await s.add_user()
    return s


async def login(svc: Service, resource: Any) -> Any:
    return await svc.client.post(
        "/auth/login", json={"username": "alice", "password": "secret", "resource": resource}, headers=ORIGIN
    )


async def refresh(svc: Service, csrf: str, body: Any = None) -> Any:
    headers = {**ORIGIN, "X-CSRF-Token": csrf}
    if body is None:
        return await svc.client.post("/auth/refresh", headers=headers)
    return await svc.client.post("/auth/refresh", headers=headers, json=body)


async def test_login_names_one_or_several_resources(svc: Service) -> None:
    assert aud((await login(svc, BILLING)).json()["access_token"]) == BILLING
    assert aud((await login(svc, [BILLING, FILES])).json()["access_token"]) == [BILLING, FILES]


async def test_refresh_narrows_with_a_body_and_keeps_all_without(svc: Service) -> None:
    csrf = (await login(svc, [BILLING, FILES])).json()["csrf_token"]
    r = await refresh(svc, csrf, {"resource": [FILES]})
    assert r.status_code == 200, r.text
    assert aud(r.json()["access_token"]) == FILES
    r = await refresh(svc, r.json().get("csrf_token", csrf))
    assert aud(r.json()["access_token"]) == [BILLING, FILES]


async def test_refresh_never_widens(service_factory: ServiceFactory) -> None:
    svc: Service = await service_factory(resources=(BILLING, FILES))
    await svc.add_user()
    csrf = (await login(svc, BILLING)).json()["csrf_token"]
    r = await refresh(svc, csrf, {"resource": [BILLING, FILES]})
    assert r.status_code == 400 and r.json()["error"] == "invalid_target"


@pytest.mark.parametrize("bad", [[], [""], [3], {"a": 1}, "a b", [BILLING, None]])
async def test_malformed_resource_is_400_invalid_request(svc: Service, bad: Any) -> None:
    r = await login(svc, bad)
    assert r.status_code == 400 and r.json()["error"] == "invalid_request", r.text


async def test_unknown_resource_is_invalid_target(svc: Service) -> None:
    r = await login(svc, "https://unknown.example")
    assert r.status_code == 400 and r.json()["error"] == "invalid_target"
