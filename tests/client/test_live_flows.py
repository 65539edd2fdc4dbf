"""TokenAuth against the real token service on loopback: sync, async, requests."""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import requests

from silentauth.client import (
    BodyNotReplayable,
    FileTokenStore,
    LoginFailed,
    SessionExpired,
    StepUpRequired,
    TokenAuth,
)
from silentauth.clock import FakeClock
from tests.client.conftest import refresh_total
from tests.conftest import LiveServer

ACCESS_TTL = 900


def _auth(live: LiveServer, clock: FakeClock, **kwargs: object) -> TokenAuth:
    auth = TokenAuth(token_url=f"{live.url}/auth/token", clock=clock, **kwargs)  # type: ignore[arg-type]
    auth.login("alice", "secret")
    return auth


def test_sync_client_refreshes_proactively_within_the_margin(
    live_server_factory: Callable[..., LiveServer], shared_clock: FakeClock
) -> None:
    live = live_server_factory(clock=shared_clock, reuse_grace=0)
    auth = _auth(live, shared_clock)
    first = auth.tokens
    assert first is not None
    shared_clock.advance(ACCESS_TTL - 30)  # 30 s left: due under a 60 s margin
    with httpx.Client(auth=auth) as client:
        r = client.get(f"{live.url}/api/me")
    assert r.status_code == 200 and r.history == []  # no 401 was ever seen
    assert auth.tokens is not None and auth.tokens.access_token != first.access_token
    assert auth.tokens.refresh_token != first.refresh_token
    assert refresh_total(live)["rotated"] == 1


@pytest.fixture
def strict_live(live_server_factory: Callable[..., LiveServer], shared_clock: FakeClock) -> LiveServer:
    """Shared clock, no reuse grace: a second refresh of one token would revoke all.

    (A sync fixture: live_server_factory seeds users with asyncio.run.)
    """
    return live_server_factory(clock=shared_clock, reuse_grace=0)


@pytest.mark.anyio
async def test_async_client_refreshes_after_expiry_without_a_401(
    strict_live: LiveServer, shared_clock: FakeClock
) -> None:
    live = strict_live
    auth = TokenAuth(token_url=f"{live.url}/auth/token", clock=shared_clock)
    await auth.alogin("alice", "secret")
    shared_clock.advance(ACCESS_TTL + 100)
    async with httpx.AsyncClient(auth=auth) as client:
        r = await client.get(f"{live.url}/api/me")
        again = await client.get(f"{live.url}/api/me")
    assert r.status_code == 200 and r.history == [] and again.status_code == 200
    assert refresh_total(live)["rotated"] == 1


@pytest.fixture
def skewed(live_server_factory: Callable[..., LiveServer]) -> Iterator[tuple[LiveServer, FakeClock, TokenAuth]]:
    """The server's clock runs past the token's exp; the client's does not.

    So the client believes its token is fresh and the server answers 401
    invalid_token: the reactive path, with a real server.
    """
    server_clock = FakeClock(time.time())
    live = live_server_factory(clock=server_clock, reuse_grace=0)
    auth = _auth(live, FakeClock(server_clock()))
    server_clock.advance(ACCESS_TTL + 100)
    yield live, server_clock, auth


def test_post_rejected_mid_flight_is_replayed_with_its_json_body(
    skewed: tuple[LiveServer, FakeClock, TokenAuth],
) -> None:
    live, _, auth = skewed
    form = {"title": "a long form", "body": "x" * 50_000, "items": list(range(100))}
    with httpx.Client(auth=auth) as client:
        r = client.post(f"{live.url}/api/echo", json=form)
    assert r.status_code == 200
    assert r.json() == form
    assert [h.status_code for h in r.history] == [401]
    assert refresh_total(live)["rotated"] == 1


@pytest.mark.anyio
async def test_async_post_rejected_mid_flight_is_replayed_with_its_body(
    skewed: tuple[LiveServer, FakeClock, TokenAuth],
) -> None:
    live, _, auth = skewed

    async def chunks():  # type: ignore[no-untyped-def]
        # A streaming body: buffered by the auth flow, so the replay is whole.
        for part in (b'{"long": "', b"y" * 10_000, b'"}'):
            yield part

    async with httpx.AsyncClient(auth=auth) as client:
        r = await client.post(
            f"{live.url}/api/echo", content=chunks(), headers={"content-type": "application/json"}
        )
    assert r.status_code == 200 and r.json() == {"long": "y" * 10_000}
    assert refresh_total(live)["rotated"] == 1


def test_requests_session_replays_a_rejected_post_once(
    skewed: tuple[LiveServer, FakeClock, TokenAuth],
) -> None:
    live, _, auth = skewed
    with requests.Session() as session:
        session.auth = auth
        r = session.post(f"{live.url}/api/echo", json={"amount": 12, "note": "ü"})
        second = session.get(f"{live.url}/api/me")
    assert r.status_code == 200 and r.json() == {"amount": 12, "note": "ü"}
    assert [h.status_code for h in r.history] == [401]
    assert second.status_code == 200 and second.history == []
    assert refresh_total(live)["rotated"] == 1


def test_requests_file_body_is_rewound_for_the_replay(
    skewed: tuple[LiveServer, FakeClock, TokenAuth],
) -> None:
    live, _, auth = skewed
    payload = b'{"upload": "' + b"z" * 20_000 + b'"}'
    with requests.Session() as session:
        session.auth = auth
        r = session.post(
            f"{live.url}/api/echo", data=io.BytesIO(payload), headers={"content-type": "application/json"}, timeout=10
        )
    assert r.status_code == 200 and r.json() == {"upload": "z" * 20_000}
    assert [h.status_code for h in r.history] == [401]


def test_requests_one_shot_stream_body_is_refused_not_resent_empty(
    skewed: tuple[LiveServer, FakeClock, TokenAuth],
) -> None:
    live, _, auth = skewed

    def stream() -> Iterator[bytes]:
        yield b'{"a": 1}'

    with requests.Session() as session:
        session.auth = auth
        with pytest.raises(BodyNotReplayable):
            session.post(f"{live.url}/api/echo", data=stream(), headers={"content-type": "application/json"})


def test_server_pushed_new_access_token_is_adopted_without_a_refresh(
    live_server_factory: Callable[..., LiveServer], shared_clock: FakeClock
) -> None:
    live = live_server_factory(clock=shared_clock, renew_within=60, reuse_grace=0)
    auth = _auth(live, shared_clock, refresh_margin=10)
    first = auth.tokens
    assert first is not None
    shared_clock.advance(ACCESS_TTL - 30)  # server renews (< 60 s), client not due (> 10 s)
    with httpx.Client(auth=auth) as client:
        r = client.get(f"{live.url}/api/me")
        assert "new-access-token" in r.headers
        adopted = auth.tokens
        assert adopted is not None and adopted.access_token == r.headers["new-access-token"]
        assert adopted.refresh_token == first.refresh_token
        shared_clock.advance(40)  # the original token is now past exp; the adopted one is not
        me = client.get(f"{live.url}/api/me")
    assert me.status_code == 200 and me.history == []
    assert sum(refresh_total(live).values()) == 0


def test_step_up_challenge_raises_step_up_required_with_max_age(
    live_server_factory: Callable[..., LiveServer], shared_clock: FakeClock
) -> None:
    live = live_server_factory(clock=shared_clock, step_up_max_age=300)
    auth = _auth(live, shared_clock)
    with httpx.Client(auth=auth) as client:
        assert client.post(f"{live.url}/api/payments").status_code == 200
        shared_clock.advance(400)  # login now older than 300 s; token still valid
        with pytest.raises(StepUpRequired) as info:
            client.post(f"{live.url}/api/payments")
    assert info.value.max_age == 300
    assert sum(refresh_total(live).values()) == 0


def test_bad_password_raises_login_failed_with_the_oauth_error(live_server: LiveServer) -> None:
    auth = TokenAuth(token_url=f"{live_server.url}/auth/token")
    with pytest.raises(LoginFailed) as info:
        auth.login("alice", "wrong")
    assert info.value.error == "invalid_grant" and info.value.status_code == 400
    with httpx.Client(auth=auth) as client, pytest.raises(SessionExpired, match="not logged in"):
        client.get(f"{live_server.url}/api/me")


def test_revoked_session_raises_session_expired_and_calls_back_once(
    live_server_factory: Callable[..., LiveServer], shared_clock: FakeClock
) -> None:
    live = live_server_factory(clock=shared_clock)
    calls: list[int] = []
    auth = _auth(live, shared_clock, on_session_expired=lambda: calls.append(1))
    with httpx.Client(auth=auth) as client:
        assert client.post(f"{live.url}/auth/logout").status_code == 204
        for _ in range(3):
            with pytest.raises(SessionExpired):
                client.get(f"{live.url}/api/me")
    assert calls == [1]
    assert refresh_total(live)["invalid"] == 1  # one attempt, then no more
    auth.login("alice", "secret")  # a new login revives the auth object
    with httpx.Client(auth=auth) as client:
        assert client.get(f"{live.url}/api/me").status_code == 200


def test_logout_forgets_tokens_without_calling_the_expiry_callback(
    live_server: LiveServer, tmp_path: Path
) -> None:
    calls: list[int] = []
    store = FileTokenStore(tmp_path / "tokens.json")
    auth = TokenAuth(token_url=f"{live_server.url}/auth/token", store=store, on_session_expired=lambda: calls.append(1))
    auth.login("alice", "secret")
    assert store.load() == auth.tokens
    auth.logout()
    assert store.load() is None and auth.tokens is None
    with httpx.Client(auth=auth) as client, pytest.raises(SessionExpired, match="ended"):
        client.get(f"{live_server.url}/api/me")
    assert calls == []
