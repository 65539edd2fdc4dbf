"""Edge cases a real server will not produce on demand (httpx.MockTransport).

The auth flow is also driven by hand, the way httpx tests its own schemes.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import time
import warnings

import httpx
import pytest

from silentauth.client import (
    MemoryTokenStore,
    RefreshFailed,
    SessionExpired,
    TokenAuth,
    TokenSet,
)
from silentauth.clock import FakeClock

TOKEN_URL = "https://auth.example/token"
API = "https://api.example"
INVALID = {"WWW-Authenticate": 'Bearer error="invalid_token"'}


class TokenEndpointDouble:
    """Answers refresh requests from a script; counts them."""

    def __init__(self, *answers: httpx.Response) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


def grant(n: int, expires_in: int = 600) -> httpx.Response:
    return httpx.Response(
        200, json={"access_token": f"a{n}", "refresh_token": f"r{n}", "expires_in": expires_in, "token_type": "Bearer"}
    )


def make_auth(endpoint: TokenEndpointDouble, clock: FakeClock, **kwargs: object) -> TokenAuth:
    transport = httpx.MockTransport(endpoint)
    store = MemoryTokenStore(TokenSet("a0", "r0", clock(), clock() + 600))
    return TokenAuth(  # type: ignore[misc]
        token_url=TOKEN_URL,
        allowed_origins=[API],
        store=store,
        clock=clock,
        transport=transport,
        async_transport=transport,
        **kwargs,
    )


def test_flow_by_hand_replays_once_with_the_same_body_then_stops() -> None:
    clock = FakeClock()
    endpoint = TokenEndpointDouble(grant(1))
    auth = make_auth(endpoint, clock, client_id="cli", client_secret="s3cret")
    request = httpx.Request("POST", "https://api.example/echo", json={"k": "v"})
    flow = auth.sync_auth_flow(request)
    first = next(flow)
    assert first.headers["Authorization"] == "Bearer a0"
    second = flow.send(httpx.Response(401, headers=INVALID, request=first))
    assert second.headers["Authorization"] == "Bearer a1"
    assert json.loads(second.content) == {"k": "v"}
    with pytest.raises(StopIteration):  # a second 401 is returned, never looped on
        flow.send(httpx.Response(401, headers=INVALID, request=second))
    [refresh] = endpoint.requests
    assert refresh.headers["Authorization"].startswith("Basic ")  # RFC 6749 §2.3.1
    assert b"grant_type=refresh_token&refresh_token=r0" in refresh.content


def test_401_without_bearer_challenge_or_with_other_error_is_passed_through() -> None:
    clock = FakeClock()
    endpoint = TokenEndpointDouble(grant(1))
    auth = make_auth(endpoint, clock)
    for headers in ({}, {"WWW-Authenticate": 'Basic realm="x"'}, {"WWW-Authenticate": 'Bearer error="invalid_request"'}):
        flow = auth.sync_auth_flow(httpx.Request("GET", "https://api.example/"))
        next(flow)
        with pytest.raises(StopIteration):
            flow.send(httpx.Response(401, headers=headers))
    assert endpoint.requests == []


def test_401_with_an_already_replaced_token_retries_without_refreshing() -> None:
    clock = FakeClock()
    endpoint = TokenEndpointDouble(grant(1))
    auth = make_auth(endpoint, clock)
    stale = auth.sync_auth_flow(httpx.Request("GET", "https://api.example/"))
    next(stale)  # in flight with a0
    fresh = auth.sync_auth_flow(httpx.Request("GET", "https://api.example/"))
    next(fresh)
    assert fresh.send(httpx.Response(401, headers=INVALID)).headers["Authorization"] == "Bearer a1"
    assert stale.send(httpx.Response(401, headers=INVALID)).headers["Authorization"] == "Bearer a1"
    assert len(endpoint.requests) == 1


def test_5xx_with_retry_after_keeps_tokens_and_cools_down(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    endpoint = TokenEndpointDouble(httpx.Response(503, headers={"Retry-After": "30"}), grant(1))
    auth = make_auth(endpoint, clock)
    clock.advance(590)  # due, still valid: the caller is not bothered
    with caplog.at_level(logging.WARNING, "silentauth.client"):
        assert auth.ensure_fresh().access_token == "a0"
    assert "503" in caplog.text
    clock.advance(20)  # expired, cooldown (30 s) running: fail fast, no request
    with pytest.raises(RefreshFailed, match="cooling down"):
        auth.ensure_fresh()
    assert len(endpoint.requests) == 1
    clock.advance(11)
    assert auth.ensure_fresh().access_token == "a1"
    assert len(endpoint.requests) == 2


def test_malformed_success_response_is_a_transient_failure() -> None:
    clock = FakeClock()
    endpoint = TokenEndpointDouble(httpx.Response(200, text="<html>proxy login</html>"))
    auth = make_auth(endpoint, clock)
    clock.advance(700)
    with pytest.raises(RefreshFailed, match="malformed"):
        auth.ensure_fresh()
    assert auth.tokens is not None


def test_unauthorized_client_ends_the_session_and_a_failing_callback_is_contained(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    endpoint = TokenEndpointDouble(httpx.Response(401, json={"error": "invalid_client"}))

    def boom() -> None:
        raise RuntimeError("callback bug")

    auth = make_auth(endpoint, clock, on_session_expired=boom)
    clock.advance(700)
    with caplog.at_level(logging.ERROR, "silentauth.client"), pytest.raises(SessionExpired):
        auth.ensure_fresh()
    assert "callback failed" in caplog.text
    with pytest.raises(SessionExpired):
        auth.ensure_fresh()
    assert len(endpoint.requests) == 1


@pytest.mark.anyio
async def test_async_flow_by_hand_refreshes_on_401() -> None:
    clock = FakeClock()
    endpoint = TokenEndpointDouble(grant(1))
    auth = make_auth(endpoint, clock)
    flow = auth.async_auth_flow(httpx.Request("PUT", "https://api.example/", content=b"payload"))
    first = await flow.__anext__()
    assert first.headers["Authorization"] == "Bearer a0"
    second = await flow.asend(httpx.Response(401, headers=INVALID))
    assert second.headers["Authorization"] == "Bearer a1" and second.content == b"payload"
    with pytest.raises(StopAsyncIteration):
        await flow.asend(httpx.Response(200))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_forked_child_is_not_stuck_on_a_lock_a_parent_thread_held() -> None:
    clock = FakeClock()
    endpoint = TokenEndpointDouble(grant(1))
    auth = make_auth(endpoint, clock)
    clock.advance(700)
    assert auth.store.acquire(0)  # a parent thread is mid-refresh at fork time
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # fork() with threads, 3.12+
            pid = os.fork()
        if pid == 0:  # the child: must refresh on its own, not wait forever
            code = 1
            try:
                code = 0 if auth.ensure_fresh().access_token == "a1" else 2
            finally:
                os._exit(code)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            time.sleep(0.02)
        else:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail("the forked child hung on an inherited lock")
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        auth.store.release()


def test_a_bare_bearer_challenge_is_refreshed_and_replayed_once() -> None:
    # RFC 6750 §3: a server may answer a bad token with just "Bearer realm=...",
    # no error code; that is still a rejected token, not a reason to give up.
    clock = FakeClock()
    endpoint = TokenEndpointDouble(grant(1))
    auth = make_auth(endpoint, clock)
    flow = auth.sync_auth_flow(httpx.Request("GET", f"{API}/"))
    next(flow)
    retry = flow.send(httpx.Response(401, headers={"WWW-Authenticate": 'Bearer realm="api"'}))
    assert retry.headers["Authorization"] == "Bearer a1"
    assert len(endpoint.requests) == 1


def test_the_refresh_margin_is_jittered_per_client_so_a_fleet_spreads_out() -> None:
    # margin 60 s, jitter 1: each client refreshes between 60 and 120 s before expiry.
    clock = FakeClock(0)
    endpoints = [TokenEndpointDouble(grant(1)) for _ in range(40)]
    fleet = [make_auth(e, clock, refresh_margin=60, jitter=1.0) for e in endpoints]

    def refreshed_at(seconds_before_expiry: float) -> int:
        clock.set(600 - seconds_before_expiry)
        for auth in fleet:
            auth.ensure_fresh()
        return sum(len(e.requests) for e in endpoints)

    assert refreshed_at(121) == 0  # before anyone's window
    assert 0 < refreshed_at(90) < len(fleet)  # mid-window: some did, some did not (p(fail) ~ 1e-12)
    assert refreshed_at(59) == len(fleet)  # inside every margin


def test_a_grant_refreshed_by_another_holder_without_rotation_is_taken_not_refreshed_again() -> None:
    # RFC 6749 §6: a server may keep the refresh token. Two holders share one store;
    # the second must see the first one's newer access token (same refresh token)
    # instead of spending another refresh.
    clock = FakeClock()
    endpoint = TokenEndpointDouble(httpx.Response(200, json={"access_token": "a1", "expires_in": 600}))
    first = make_auth(endpoint, clock)
    second = TokenAuth(
        token_url=TOKEN_URL,
        allowed_origins=[API],
        store=first.store,
        clock=clock,
        transport=httpx.MockTransport(endpoint),
    )
    clock.advance(590)
    assert first.ensure_fresh().access_token == "a1"
    assert second.ensure_fresh().access_token == "a1"
    assert len(endpoint.requests) == 1


def test_a_successful_refresh_resets_the_backoff() -> None:
    clock = FakeClock()
    down = httpx.Response(503)
    endpoint = TokenEndpointDouble(down, down, grant(1), down, grant(2))
    auth = make_auth(endpoint, clock)
    clock.advance(590)  # due, still valid: failures cost the caller nothing
    assert auth.ensure_fresh().access_token == "a0"  # 1st failure: ~1 s cooldown
    clock.advance(1.3)
    assert auth.ensure_fresh().access_token == "a0"  # 2nd failure: ~2 s cooldown
    clock.advance(2.5)
    assert auth.ensure_fresh().access_token == "a1"
    clock.advance(590)
    assert auth.ensure_fresh().access_token == "a1"  # a new first failure: ~1 s again, not ~4 s
    clock.advance(1.3)
    assert auth.ensure_fresh().access_token == "a2"
    assert len(endpoint.requests) == 5
