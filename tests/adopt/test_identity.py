"""Bring your own identity: a plug-in checks the credentials, silentauth keeps the rest."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from silentauth.core.identity import Identity, RequestInfo
from silentauth.core.tokens import decode_unverified
from silentauth.errors import ConfigError
from silentauth.settings import Rate
from tests.adopt.plugins import Directory
from tests.conftest import Service, ServiceFactory

pytestmark = pytest.mark.anyio


def form(name: str, password: str) -> dict[str, str]:
    return {"grant_type": "password", "username": name, "password": password}


async def start(service_factory: ServiceFactory, directory: Any, **overrides: Any) -> Service:
    svc: Service = await service_factory(app_options={"identity": directory}, **overrides)
    return svc


async def test_password_grant_and_browser_login_ask_the_plugin(service_factory: ServiceFactory) -> None:
    directory = Directory()
    svc = await start(service_factory, directory)
    r = await svc.client.post("/auth/token", data=form("carol", "c-pass"), headers={"User-Agent": "cli/1"})
    assert r.status_code == 200, r.text
    _, claims = decode_unverified(r.json()["access_token"])
    assert claims["sub"] == "u-100" and claims["preferred_username"] == "carol"
    assert directory.calls[-1][1] == RequestInfo(ip="127.0.0.1", user_agent="cli/1", client_id="native")
    r = await svc.client.post("/auth/login", json={"username": "dave", "password": "d-pass"})
    assert r.status_code == 200, r.text
    assert decode_unverified(r.json()["access_token"])[1]["sub"] == "u-200"
    # The refresh path needs no plug-in: the session is silentauth's.
    assert (await svc.refresh((await svc.password_grant("carol", "c-pass"))["refresh_token"])).status_code == 200


async def test_refusal_is_invalid_grant_and_the_builtin_table_is_not_asked(service_factory: ServiceFactory) -> None:
    svc = await start(service_factory, Directory())
    await svc.add_user("carol", "table-pass")  # in the built-in table, which is not consulted now
    r = await svc.client.post("/auth/token", data=form("carol", "table-pass"))
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    assert svc.metric("silentauth_login_total", outcome="bad_credentials") == 1


@pytest.mark.parametrize("failure", ["raises", "hangs", "nonsense"])
async def test_a_failing_plugin_is_a_503_with_retry_after_and_no_session(
    service_factory: ServiceFactory, caplog: pytest.LogCaptureFixture, failure: str
) -> None:
    directory = Directory()
    if failure == "raises":
        directory.failure = ConnectionError("ldap://directory is down")
    elif failure == "hangs":
        directory.delay = 5.0

    class Nonsense(Directory):
        async def authenticate(self, username: str, password: str, request: RequestInfo) -> Identity | None:
            return "u-100"  # type: ignore[return-value]  # a plug-in bug: a str, not an Identity

    plugin = Nonsense() if failure == "nonsense" else directory
    svc = await start(service_factory, plugin, identity_timeout=0.2)
    caplog.set_level(logging.WARNING, logger="silentauth.identity")
    for _ in range(3):
        r = await svc.client.post("/auth/token", data=form("carol", "c-pass"))
        assert r.status_code == 503, r.text
        assert r.json()["error"] == "temporarily_unavailable"
        assert int(r.headers["retry-after"]) >= 1
        r = await svc.client.post("/auth/login", json={"username": "carol", "password": "c-pass"})
        assert r.status_code == 503 and "set-cookie" not in r.headers
    assert await svc.runtime.store.list_sessions("u-100") == []
    lines = [rec.getMessage() for rec in caplog.records if rec.name == "silentauth.identity"]
    assert len(lines) == 1, lines  # once per outage, not once per request
    assert "c-pass" not in lines[0]
    assert svc.metric("silentauth_login_total", outcome="unavailable") == 6
    # Recovery is logged once too, and logins work again.
    directory.failure, directory.delay = None, 0.0
    if failure != "nonsense":
        assert (await svc.client.post("/auth/token", data=form("carol", "c-pass"))).status_code == 200
        assert "recovered" in caplog.records[-1].getMessage()


async def test_rate_limits_stay_in_front_of_the_plugin(service_factory: ServiceFactory) -> None:
    directory = Directory()
    svc = await start(service_factory, directory, rate_limit_login=Rate(2, 60))
    codes = [(await svc.client.post("/auth/token", data=form("carol", "wrong"))).status_code for _ in range(4)]
    assert codes == [400, 400, 429, 429]
    assert len(directory.calls) == 2  # a limited attempt never reaches the directory


async def test_refusals_are_padded_to_the_time_a_success_takes(service_factory: ServiceFactory) -> None:
    import time

    class Slow(Directory):
        async def authenticate(self, username: str, password: str, request: RequestInfo) -> Identity | None:
            import anyio

            if username in self.passwords:
                await anyio.sleep(0.15)  # a directory whose known users cost a bind
            return await super().authenticate(username, password, request)

    svc = await start(service_factory, Slow())
    assert (await svc.client.post("/auth/token", data=form("carol", "c-pass"))).status_code == 200
    began = time.monotonic()
    assert (await svc.client.post("/auth/token", data=form("nobody", "x"))).status_code == 400
    assert time.monotonic() - began >= 0.12


async def test_identity_setting_names_an_importable_object(service_factory: ServiceFactory) -> None:
    from tests.adopt import plugins

    svc: Service = await service_factory(identity="tests.adopt.plugins:directory")
    assert (await svc.client.post("/auth/token", data=form("dave", "d-pass"))).status_code == 200
    assert plugins.directory.calls[-1][0] == "dave"


@pytest.mark.parametrize(
    "spec", ["tests.adopt.plugins", "tests.adopt.nowhere:x", "tests.adopt.plugins:missing", "json:dumps"]
)
async def test_a_bad_identity_setting_is_a_config_error(service_factory: ServiceFactory, spec: str) -> None:
    with pytest.raises(ConfigError, match="IDENTITY"):
        await service_factory(identity=spec)


@pytest.mark.parametrize("user_id", ["", "x" * 257, "u\n1", "u\u200b1"])
async def test_an_identity_that_cannot_be_a_subject_is_refused_not_truncated(
    service_factory: ServiceFactory, user_id: str
) -> None:
    class Odd(Directory):
        async def authenticate(self, username: str, password: str, request: RequestInfo) -> Identity | None:
            return Identity(user_id, username)

    svc = await start(service_factory, Odd())
    r = await svc.client.post("/auth/token", data=form("carol", "c-pass"))
    assert r.status_code == 503, r.text
    assert svc.metric("silentauth_login_total", outcome="ok") == 0


async def test_a_plugins_deliberate_4xx_is_passed_on(service_factory: ServiceFactory) -> None:
    from silentauth.errors import InvalidRequest

    class Picky(Directory):
        async def authenticate(self, username: str, password: str, request: RequestInfo) -> Identity | None:
            raise InvalidRequest("User names here are e-mail addresses.")

    svc = await start(service_factory, Picky())
    r = await svc.client.post("/auth/token", data=form("carol", "c-pass"))
    assert r.status_code == 400 and "e-mail" in r.json()["error_description"]
