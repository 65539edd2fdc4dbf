"""RFC 8707 resource indicators from the Python client, against the live token service.

``TokenAuth(resource=...)`` names the API (or APIs) its access tokens are for:
the login and every refresh carry ``resource``, so the token's ``aud`` is
exactly those; an unknown resource fails the login with a clear error.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from silentauth.client import LoginFailed, MemoryTokenStore, TokenAuth
from silentauth.clock import FakeClock
from silentauth.core.encoding import b64decode
from tests.conftest import LiveServer

BILLING, FILES = "https://billing.example", "https://files.example"
ACCESS_TTL = 900


def aud(token: str) -> Any:
    import json

    return json.loads(b64decode(token.split(".")[1]))["aud"]


@pytest.fixture
def live(live_server_factory: Callable[..., LiveServer], shared_clock: FakeClock) -> LiveServer:
    return live_server_factory(clock=shared_clock, resources=(BILLING, FILES))


def test_the_token_is_for_the_named_resource_after_login_and_refresh(live: LiveServer, shared_clock: FakeClock) -> None:
    auth = TokenAuth(f"{live.url}/auth/token", resource=BILLING, clock=shared_clock)
    first = auth.login("alice", "secret")
    assert aud(first.access_token) == BILLING  # a string is one URI, not its characters
    shared_clock.advance(ACCESS_TTL - 30)
    renewed = auth.ensure_fresh()
    assert renewed.refresh_token != first.refresh_token and aud(renewed.access_token) == BILLING


def test_several_resources_give_a_list_audience(live: LiveServer, shared_clock: FakeClock) -> None:
    auth = TokenAuth(f"{live.url}/auth/token", resource=[BILLING, FILES], clock=shared_clock)
    assert aud(auth.login("alice", "secret").access_token) == [BILLING, FILES]


def test_the_refresh_sends_the_resource_so_a_narrower_client_gets_a_narrower_token(
    live: LiveServer, shared_clock: FakeClock
) -> None:
    # Two clients share one session (one store): the second names only BILLING, and
    # its refresh must say so, or the token would keep both audiences.
    store = MemoryTokenStore()
    wide = TokenAuth(f"{live.url}/auth/token", resource=[BILLING, FILES], store=store, clock=shared_clock)
    wide.login("alice", "secret")
    narrow = TokenAuth(f"{live.url}/auth/token", resource=BILLING, store=store, clock=shared_clock)
    shared_clock.advance(ACCESS_TTL - 30)
    renewed = narrow.ensure_fresh()
    assert aud(renewed.access_token) == BILLING


def test_an_unknown_resource_fails_the_login_with_invalid_target(live: LiveServer, shared_clock: FakeClock) -> None:
    auth = TokenAuth(f"{live.url}/auth/token", resource="https://evil.example", clock=shared_clock)
    with pytest.raises(LoginFailed) as caught:
        auth.login("alice", "secret")
    assert caught.value.status_code == 400 and caught.value.error == "invalid_target"
    assert "evil.example" in caught.value.description
    assert auth.tokens is None


def test_a_resource_with_spaces_is_refused_before_any_request() -> None:
    with pytest.raises(ValueError, match="resource"):
        TokenAuth("http://127.0.0.1:9/auth/token", resource="https://a.example https://b.example")
