"""The token goes only to the issuer's origin and listed ones; foreign answers are ignored.

Two kinds of real loopback servers: the token service (the issuer) and
recording servers on other ports, which stand for a foreign host. Each test
runs through httpx (sync and async) and requests.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import requests

from silentauth.client import TokenAuth
from silentauth.client.origins import (
    OriginPolicy,
    format_origin,
    origin_of,
    parse_origin,
)
from silentauth.clock import FakeClock
from tests.client.conftest import CountingTransport, refresh_total
from tests.client.recorder import Recorder, recording_server
from tests.conftest import LiveServer

KINDS = ["httpx", "httpx-async", "requests"]
Send = Callable[[str, str], tuple[int, dict[str, str]]]


def sender(kind: str, auth: TokenAuth) -> Send:
    """``send(method, url) -> (status, headers)`` through one kind of client."""

    def send(method: str, url: str) -> tuple[int, dict[str, str]]:
        if kind == "requests":
            with requests.Session() as session:
                session.auth = auth
                r = session.request(method, url, timeout=30)
                return r.status_code, dict(r.headers)
        if kind == "httpx":
            with httpx.Client(auth=auth, follow_redirects=True, timeout=30) as client:
                response = client.request(method, url)
                return response.status_code, dict(response.headers)

        async def go() -> httpx.Response:
            async with httpx.AsyncClient(auth=auth, follow_redirects=True, timeout=30) as client:
                return await client.request(method, url)

        response = asyncio.run(go())
        return response.status_code, dict(response.headers)

    return send


@pytest.fixture
def foreign() -> Iterator[Recorder]:
    with recording_server() as recorder:
        yield recorder


@pytest.fixture
def issuer(live_server_factory: Callable[..., LiveServer], shared_clock: FakeClock) -> LiveServer:
    return live_server_factory(clock=shared_clock, users={"alice": "secret", "mallory": "evil"}, reuse_grace=0)


def login(live: LiveServer, clock: FakeClock, user: str = "alice", password: str = "secret", **kw: Any) -> TokenAuth:
    auth = TokenAuth(token_url=f"{live.url}/auth/token", clock=clock, **kw)
    auth.login(user, password)
    return auth


def whoami(live: LiveServer, auth: TokenAuth) -> str:
    with httpx.Client(auth=auth) as client:
        r = client.get(f"{live.url}/api/me")
    assert r.status_code == 200, r.text
    return str(r.json()["username"])


@pytest.mark.parametrize("kind", KINDS)
def test_a_foreign_host_never_sees_the_token_while_the_issuer_does(
    kind: str, issuer: LiveServer, foreign: Recorder, shared_clock: FakeClock
) -> None:
    auth = login(issuer, shared_clock)
    send = sender(kind, auth)
    assert send("GET", f"{foreign.url}/echo")[0] == 200
    assert send("POST", f"{foreign.url}/echo")[0] == 200
    assert foreign.authorizations == [None, None]
    assert send("GET", f"{issuer.url}/api/me")[0] == 200  # the token still goes home


@pytest.mark.parametrize("kind", KINDS)
def test_a_foreign_renewal_is_ignored_and_logged_once_per_event(
    kind: str, issuer: LiveServer, foreign: Recorder, shared_clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    auth = login(issuer, shared_clock)
    mallory = login(issuer, shared_clock, "mallory", "evil")
    assert mallory.tokens is not None and auth.tokens is not None
    before = auth.tokens
    # A valid token of the attacker's own session: adopting it would swap identities.
    push = f"{foreign.url}/echo?push={mallory.tokens.access_token}"
    send = sender(kind, auth)
    with caplog.at_level(logging.WARNING, "silentauth.client"):
        status, headers = send("GET", push)
        send("GET", push)
    assert status == 200 and headers["new-access-token"] == mallory.tokens.access_token
    assert auth.tokens == before
    assert whoami(issuer, auth) == "alice"
    lines = [r.getMessage() for r in caplog.records if "New-Access-Token" in r.getMessage()]
    assert len(lines) == 2 and "1 ignored so far" in lines[0] and "2 ignored so far" in lines[1]
    assert format_origin(origin_of(foreign.url)) in lines[0]
    assert mallory.tokens.access_token not in caplog.text  # a token is never logged


@pytest.mark.parametrize("kind", KINDS)
def test_a_foreign_401_or_step_up_never_triggers_a_refresh_or_a_retry(
    kind: str, issuer: LiveServer, foreign: Recorder, shared_clock: FakeClock
) -> None:
    counter = CountingTransport()
    auth = login(issuer, shared_clock, transport=counter, async_transport=counter)
    send = sender(kind, auth)
    assert send("GET", f"{foreign.url}/reject")[0] == 401
    assert send("GET", f"{foreign.url}/reject?error=insufficient_user_authentication")[0] == 401
    assert len(foreign.seen) == 2  # no replay
    assert counter.calls["refresh"] == 0 and sum(refresh_total(issuer).values()) == 0


@pytest.mark.parametrize("kind", KINDS)
def test_a_foreign_request_needs_no_login(kind: str, issuer: LiveServer, foreign: Recorder) -> None:
    auth = TokenAuth(token_url=f"{issuer.url}/auth/token")
    assert sender(kind, auth)("GET", f"{foreign.url}/echo")[0] == 200
    assert foreign.authorizations == [None]


@pytest.mark.parametrize("kind", KINDS)
def test_a_listed_origin_gets_the_token_and_its_401_is_refreshed_once(
    kind: str, issuer: LiveServer, foreign: Recorder, shared_clock: FakeClock
) -> None:
    auth = login(issuer, shared_clock, allowed_origins=[foreign.url])
    first = auth.tokens
    assert first is not None
    send = sender(kind, auth)
    assert send("GET", f"{foreign.url}/reject")[0] == 401  # rejected twice: returned, no third try
    assert auth.tokens is not None
    assert foreign.authorizations == [f"Bearer {first.access_token}", f"Bearer {auth.tokens.access_token}"]
    assert first.access_token != auth.tokens.access_token
    assert refresh_total(issuer)["rotated"] == 1


@pytest.mark.parametrize("kind", KINDS)
def test_a_redirect_from_a_listed_origin_to_a_foreign_one_gets_neither_token_nor_trust(
    kind: str, issuer: LiveServer, foreign: Recorder, shared_clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    mallory = login(issuer, shared_clock, "mallory", "evil")
    assert mallory.tokens is not None
    with recording_server() as listed:
        auth = login(issuer, shared_clock, allowed_origins=[listed.url])
        before = auth.tokens
        assert before is not None
        target = f"{foreign.url}/echo?push={mallory.tokens.access_token}"
        with caplog.at_level(logging.WARNING, "silentauth.client"):
            status, _ = sender(kind, auth)("GET", str(httpx.URL(f"{listed.url}/redirect", params={"to": target})))
        assert status == 200
        assert listed.authorizations == [f"Bearer {before.access_token}"]
    assert foreign.authorizations == [None]
    assert auth.tokens == before and whoami(issuer, auth) == "alice"
    assert "ignored a New-Access-Token" in caplog.text


def test_origins_compare_scheme_host_and_port_with_default_ports_filled_in() -> None:
    assert origin_of("HTTPS://API.Example:443/x?y") == ("https", "api.example", 443)
    assert origin_of("http://api.example/") == ("http", "api.example", 80)
    assert origin_of("http://[::1]:8080/") == ("http", "::1", 8080)
    assert origin_of("ftp://api.example/") is None and origin_of("/relative") is None
    policy = OriginPolicy("https://auth.example/token", ["http://127.0.0.1:8080", "https://api.example/"])
    assert policy.allows("https://auth.example:443/api") and policy.allows(httpx.URL("https://api.example/v1"))
    assert policy.allows("http://127.0.0.1:8080/x")
    for url in ("http://auth.example/token", "https://auth.example:8443/", "http://127.0.0.1:8081/",
                "https://auth.example.evil.test/", "https://evil.test/?https://auth.example/"):
        assert not policy.allows(url), url


@pytest.mark.parametrize(
    "bad", ["api.example", "https://api.example/v1", "https://api.example?x=1", "https://u@api.example", "ftp://a.b"]
)
def test_allowed_origins_must_be_bare_origins(bad: str) -> None:
    with pytest.raises(ValueError, match="not an origin"):
        parse_origin(bad)
    with pytest.raises(ValueError):
        TokenAuth(token_url="https://auth.example/token", allowed_origins=[bad])


def test_allowed_origins_as_one_string_and_a_relative_token_url_are_refused() -> None:
    with pytest.raises(ValueError, match="list of origins"):
        TokenAuth(token_url="https://auth.example/token", allowed_origins="https://api.example")
    with pytest.raises(ValueError, match="token_url"):
        TokenAuth(token_url="/auth/token")
