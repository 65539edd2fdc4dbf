"""A pushed ``New-Access-Token`` replaces only the token it renews.

The answer to a request can arrive after the client moved on (another user
logged in, or a refresh rotated the grant). Its renewal then belongs to a
grant the client no longer holds and must not be adopted.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from silentauth.client import TokenAuth
from silentauth.clock import FakeClock
from tests.conftest import LiveServer

ACCESS_TTL = 900


def whoami(live: LiveServer, auth: TokenAuth) -> str:
    with httpx.Client(auth=auth) as client:
        r = client.get(f"{live.url}/api/me")
    assert r.status_code == 200, r.text
    return str(r.json()["username"])


@pytest.fixture
def renewing(live_server_factory: Callable[..., LiveServer], shared_clock: FakeClock) -> LiveServer:
    """Pushes a renewal in the last 60 s of a token; two users."""
    return live_server_factory(
        clock=shared_clock, renew_within=60, reuse_grace=0, users={"alice": "secret", "bob": "hunter2"}
    )


def test_a_late_renewal_for_the_previous_user_is_not_adopted(renewing: LiveServer, shared_clock: FakeClock) -> None:
    live = renewing
    auth = TokenAuth(token_url=f"{live.url}/auth/token", clock=shared_clock, refresh_margin=10)
    auth.login("alice", "secret")
    shared_clock.advance(ACCESS_TTL - 30)  # the server renews (< 60 s left); the client is not due (> 10 s)
    flow = auth.sync_auth_flow(httpx.Request("GET", f"{live.url}/api/me"))
    in_flight = next(flow)  # alice's request is on the wire ...
    with httpx.Client() as plain:
        answer = plain.send(in_flight)
    assert answer.status_code == 200 and answer.headers.get("new-access-token")
    bob = auth.login("bob", "hunter2")  # ... while the app switches to bob
    with pytest.raises(StopIteration):
        flow.send(answer)  # alice's renewal arrives late
    assert auth.tokens == bob
    assert whoami(live, auth) == "bob"


def test_a_renewal_of_the_current_token_is_adopted(renewing: LiveServer, shared_clock: FakeClock) -> None:
    # The other half of the rule: with nothing in between, the push is taken.
    live = renewing
    auth = TokenAuth(token_url=f"{live.url}/auth/token", clock=shared_clock, refresh_margin=10)
    first = auth.login("alice", "secret")
    shared_clock.advance(ACCESS_TTL - 30)
    flow = auth.sync_auth_flow(httpx.Request("GET", f"{live.url}/api/me"))
    with httpx.Client() as plain:
        answer = plain.send(next(flow))
    with pytest.raises(StopIteration):
        flow.send(answer)
    assert auth.tokens is not None and auth.tokens.access_token == answer.headers["new-access-token"]
    assert auth.tokens.refresh_token == first.refresh_token
