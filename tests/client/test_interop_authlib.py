"""The same client against an independent RFC 6749 server (Authlib's)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import httpx
import pytest

from silentauth.client import SessionExpired, TokenAuth
from silentauth.clock import FakeClock
from tests.client import authlib_server
from tests.client.authlib_server import CLIENT_ID, CLIENT_SECRET, EXPIRES_IN, State


@pytest.fixture
def oauth(shared_clock: FakeClock) -> Iterator[tuple[str, State]]:
    state = State(clock=shared_clock)
    gen = authlib_server.serve(state)
    url = next(gen)
    yield url, state
    for _ in gen:
        pass


def _auth(url: str, clock: FakeClock, **kwargs: object) -> TokenAuth:
    auth = TokenAuth(
        token_url=f"{url}/token", client_id=CLIENT_ID, client_secret=CLIENT_SECRET, clock=clock, **kwargs  # type: ignore[arg-type]
    )
    auth.login("alice", "secret", scope="profile")
    return auth


def test_authlib_server_50_threads_after_expiry_get_one_refresh(
    oauth: tuple[str, State], shared_clock: FakeClock
) -> None:
    url, state = oauth
    auth = _auth(url, shared_clock)
    first = auth.tokens
    assert first is not None and first.expires_at == first.issued_at + EXPIRES_IN  # from expires_in
    shared_clock.advance(EXPIRES_IN + 1)
    statuses: list[int] = []
    with httpx.Client(auth=auth, timeout=30) as client:
        go = threading.Barrier(50)

        def call() -> None:
            go.wait()
            statuses.append(client.get(f"{url}/me").status_code)

        threads = [threading.Thread(target=call) for _ in range(50)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    assert statuses == [200] * 50
    assert state.calls == {"password": 1, "refresh_token": 1}
    assert auth.tokens is not None and auth.tokens.refresh_token != first.refresh_token


def test_authlib_server_revoked_access_token_is_refreshed_and_post_replayed(
    oauth: tuple[str, State], shared_clock: FakeClock
) -> None:
    url, state = oauth
    auth = _auth(url, shared_clock)
    assert auth.tokens is not None
    del state.by_access[auth.tokens.access_token]  # the server forgot it: invalid_token
    with httpx.Client(auth=auth) as client:
        r = client.post(f"{url}/echo", json={"draft": "keep me"})
    assert r.status_code == 200 and r.json() == {"draft": "keep me"}
    assert [h.status_code for h in r.history] == [401]
    assert state.calls["refresh_token"] == 1


@pytest.mark.anyio
async def test_authlib_server_dead_refresh_token_expires_session_once(
    oauth: tuple[str, State], shared_clock: FakeClock
) -> None:
    url, state = oauth
    calls: list[int] = []
    auth = TokenAuth(
        token_url=f"{url}/token",
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        clock=shared_clock,
        on_session_expired=lambda: calls.append(1),
    )
    await auth.alogin("alice", "secret")
    for token in state.by_refresh.values():
        token.revoked = True
    shared_clock.advance(EXPIRES_IN + 1)
    import anyio

    errors: list[BaseException] = []
    async with httpx.AsyncClient(auth=auth) as client:

        async def call() -> None:
            try:
                await client.get(f"{url}/me")
            except SessionExpired as exc:
                errors.append(exc)

        async with anyio.create_task_group() as tg:
            for _ in range(50):
                tg.start_soon(call)
    assert len(errors) == 50 and calls == [1]
    assert state.calls["refresh_token"] == 1
