"""The claims hook: asked at login and at every refresh, checked before anything is issued."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any

import pytest

from silentauth.core.hooks import TokenContext
from silentauth.core.tokens import decode_unverified
from silentauth.errors import InsufficientClaim
from tests.adopt.plugins import Directory
from tests.conftest import Service, ServiceFactory

pytestmark = pytest.mark.anyio


def claims_of(token: str) -> dict[str, Any]:
    return decode_unverified(token)[1]


class Hook:
    """A claims hook whose answer the test sets; it records every call."""

    def __init__(self, directory: Directory) -> None:
        self.directory = directory
        self.answer: Any = None
        self.contexts: list[TokenContext] = []

    async def __call__(self, context: TokenContext) -> Mapping[str, Any]:
        self.contexts.append(context)
        if self.answer is not None:
            return self.answer  # type: ignore[no-any-return]
        return await self.directory.claims(context)


async def start(service_factory: ServiceFactory, **overrides: Any) -> tuple[Service, Directory, Hook]:
    directory = Directory()
    hook = Hook(directory)
    svc: Service = await service_factory(app_options={"identity": directory, "claims": hook}, **overrides)
    return svc, directory, hook


async def test_a_removed_role_is_gone_from_the_next_refresh(service_factory: ServiceFactory) -> None:
    svc, directory, hook = await start(service_factory)
    grant = await svc.password_grant("carol", "c-pass")
    assert claims_of(grant["access_token"])["roles"] == ["admin", "staff"]
    directory.roles["u-100"] = ["staff"]  # the application demotes carol; no new login
    r = await svc.refresh(grant["refresh_token"])
    assert r.status_code == 200
    assert claims_of(r.json()["access_token"])["roles"] == ["staff"]
    assert [c.event for c in hook.contexts] == ["login", "refresh"]
    assert hook.contexts[1].user_id == "u-100" and hook.contexts[1].client_id == "native"
    principal = svc.runtime.authenticator.check(r.json()["access_token"])
    assert principal.claim("roles") == ["staff"]
    principal.require_claim("roles", "staff")
    with pytest.raises(InsufficientClaim):
        principal.require_claim("roles", "admin")


async def test_browser_login_and_refresh_carry_the_claims(service_factory: ServiceFactory) -> None:
    svc, directory, _ = await start(service_factory)
    r = await svc.client.post("/auth/login", json={"username": "carol", "password": "c-pass"})
    assert claims_of(r.json()["access_token"])["roles"] == ["admin", "staff"]
    directory.roles["u-100"] = []
    r = await svc.client.post("/auth/refresh", headers={"X-CSRF-Token": r.json()["csrf_token"]})
    assert r.status_code == 200, r.text
    assert claims_of(r.json()["access_token"])["roles"] == []


@pytest.mark.parametrize(
    ("answer", "logged"),
    [
        ({"sub": "u-1"}, "reserved claims ['sub']"),
        ({"roles": ["x"], "aud": "other", "exp": 1}, "reserved claims ['aud', 'exp']"),
        ({"n": math.nan}, "not JSON"),
        ({"s": {1, 2}}, "not JSON"),
        (["admin"], "not a mapping"),
        ({"blob": "x" * 3000}, "CLAIMS_MAX_BYTES=2048"),
    ],
)
async def test_a_bad_answer_fails_login_and_refresh_cleanly(
    service_factory: ServiceFactory, caplog: pytest.LogCaptureFixture, answer: Any, logged: str
) -> None:
    svc, _, hook = await start(service_factory)
    good = await svc.password_grant("carol", "c-pass")
    hook.answer = answer
    caplog.set_level(logging.ERROR, logger="silentauth.hooks")
    r = await svc.client.post(
        "/auth/token", data={"grant_type": "password", "username": "carol", "password": "c-pass"}
    )
    assert r.status_code == 503 and r.json()["error"] == "temporarily_unavailable", r.text
    assert "retry-after" in r.headers
    assert len(await svc.runtime.store.list_sessions("u-100")) == 1  # only the good one
    r = await svc.refresh(good["refresh_token"])
    assert r.status_code == 503, r.text
    assert any(logged in rec.getMessage() for rec in caplog.records), [x.getMessage() for x in caplog.records]
    # Nothing was rotated: once the hook is fixed, the same refresh token still works.
    hook.answer = None
    r = await svc.refresh(good["refresh_token"])
    assert r.status_code == 200, r.text
    assert claims_of(r.json()["access_token"])["roles"] == ["admin", "staff"]


async def test_a_raising_hook_is_a_503_and_a_log_line(
    service_factory: ServiceFactory, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(context: TokenContext) -> Mapping[str, Any]:
        raise KeyError("roles table missing")

    svc: Service = await service_factory(app_options={"identity": Directory(), "claims": broken})
    caplog.set_level(logging.ERROR, logger="silentauth.hooks")
    r = await svc.client.post("/auth/login", json={"username": "dave", "password": "d-pass"})
    assert r.status_code == 503 and "set-cookie" not in r.headers
    assert "claims hook raised KeyError" in caplog.text


async def test_claims_hook_setting_names_an_importable_callable(service_factory: ServiceFactory) -> None:
    svc: Service = await service_factory(
        identity="tests.adopt.plugins:directory", claims_hook="tests.adopt.plugins:directory.claims"
    )
    grant = await svc.password_grant("carol", "c-pass")
    assert claims_of(grant["access_token"])["roles"] == ["admin", "staff"]


async def test_a_broken_hook_does_not_flood_the_log(
    service_factory: ServiceFactory, caplog: pytest.LogCaptureFixture
) -> None:
    svc, _, hook = await start(service_factory)
    hook.answer = {"sub": "someone-else"}
    caplog.set_level(logging.ERROR, logger="silentauth.hooks")
    for _ in range(20):
        r = await svc.client.post(
            "/auth/token", data={"grant_type": "password", "username": "carol", "password": "c-pass"}
        )
        assert r.status_code == 503
    assert len([r for r in caplog.records if r.name == "silentauth.hooks"]) == 1
