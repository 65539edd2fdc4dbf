"""``silentauth.client.realtime.connect`` against the real server's ``/api/ws``.

Server and client share a :class:`FakeClock`: moving it past half a token's
lifetime makes the client refresh and re-authenticate, and a connection that
failed to would be closed 4401 by the server at the old ``exp`` and show up
as a reconnection and a restart of the sequence numbers.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from silentauth.client import TokenAuth
from silentauth.client.realtime import RealtimeConnection, connect
from silentauth.clock import FakeClock
from silentauth.errors import ConnectionEnded, SessionExpired
from tests.restartable import RestartableServer

pytestmark = pytest.mark.anyio

TTL = 60


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(time.time())


@pytest.fixture
def server(tmp_path: Path, clock: FakeClock) -> Iterator[RestartableServer]:
    s = RestartableServer(tmp_path, {"alice": "secret", "bob": "hunter2"}, clock=clock, access_ttl=TTL, renew_within=0)
    s.start()
    yield s
    s.stop()


@pytest.fixture
async def auth(server: RestartableServer, clock: FakeClock) -> AsyncIterator[tuple[TokenAuth, list[int]]]:
    expired: list[int] = []
    a = TokenAuth(f"{server.url}/auth/token", clock=clock, jitter=0.0, on_session_expired=lambda: expired.append(1))
    await a.alogin("alice", "secret")
    yield a, expired
    a.close()


def ws_url(server: RestartableServer) -> str:
    return server.url.replace("http://", "ws://") + "/api/ws"


class Collector:
    """Reads every application message of a connection into ``messages``."""

    def __init__(self, ws: RealtimeConnection) -> None:
        self.ws = ws
        self.messages: list[dict[str, Any]] = []
        self.error: BaseException | None = None

    async def run(self) -> None:
        try:
            async for frame in self.ws:
                self.messages.append(json.loads(frame))
        except (ConnectionEnded, SessionExpired) as exc:
            self.error = exc

    async def until(self, predicate: Any, within: float = 3.0) -> None:
        with anyio.fail_after(within):
            while not predicate():
                await anyio.sleep(0.02)


def assert_no_gap(messages: list[dict[str, Any]]) -> None:
    assert [m["seq"] for m in messages] == list(range(len(messages)))


async def test_connection_lives_through_five_refreshes_without_a_gap(
    server: RestartableServer, clock: FakeClock, auth: tuple[TokenAuth, list[int]]
) -> None:
    a, _ = auth
    async with connect(a, ws_url(server), check_interval=0.05) as ws, anyio.create_task_group() as tg:
        c = Collector(ws)
        tg.start_soon(c.run)
        tokens = [a.tokens.access_token if a.tokens else ""]
        for _ in range(5):
            clock.advance(TTL / 2 + 1)  # due for refresh; the old token still lives 29 s
            await c.until(lambda: a.tokens is not None and a.tokens.access_token != tokens[-1])
            tokens.append(a.tokens.access_token if a.tokens else "")
            await ws.send({"type": "echo", "data": len(tokens)})
            await c.until(lambda: any(m.get("data") == len(tokens) for m in c.messages))
            await anyio.sleep(0.6)  # one server check (every 0.5 s) after the move
        # Five refreshes carried the connection across 2.6 token lifetimes.
        assert len(set(tokens)) == 6
        assert ws.reconnects == 0 and c.error is None
        assert_no_gap(c.messages)
        assert [m["data"] for m in c.messages if m["type"] == "echo"] == [2, 3, 4, 5, 6]
        tg.cancel_scope.cancel()


async def test_revoked_session_ends_with_session_expired_within_a_second(
    server: RestartableServer, auth: tuple[TokenAuth, list[int]]
) -> None:
    a, expired = auth
    async with connect(a, ws_url(server)) as ws, anyio.create_task_group() as tg:
        c = Collector(ws)
        tg.start_soon(c.run)
        await c.until(lambda: len(c.messages) > 2)
        started = time.monotonic()
        async with httpx.AsyncClient() as http:
            bearer = {"Authorization": f"Bearer {a.tokens.access_token if a.tokens else ''}"}
            r = await http.post(f"{server.url}/auth/logout-all", headers=bearer)
            assert r.status_code == 204
        await c.until(lambda: c.error is not None, within=2)
        assert time.monotonic() - started < 1.0
        assert isinstance(c.error, SessionExpired)
        assert expired == [1]
        assert ws.reconnects == 0
        with pytest.raises(SessionExpired):
            await ws.send("too late")


async def test_connection_comes_back_after_a_server_restart(
    server: RestartableServer, auth: tuple[TokenAuth, list[int]]
) -> None:
    a, _ = auth
    async with connect(a, ws_url(server), min_delay=0.1) as ws, anyio.create_task_group() as tg:
        c = Collector(ws)
        tg.start_soon(c.run)
        await c.until(lambda: len(c.messages) > 2)
        await anyio.to_thread.run_sync(server.stop)
        before = len(c.messages)
        await anyio.to_thread.run_sync(server.start)
        await c.until(lambda: ws.reconnects == 1, within=5)
        await ws.send({"type": "echo", "data": "after"})
        await c.until(lambda: any(m.get("data") == "after" for m in c.messages))
        assert_no_gap(c.messages[:before])
        assert_no_gap(c.messages[before:])  # a new connection numbers from 0
        assert c.error is None
        tg.cancel_scope.cancel()


async def test_final_close_code_ends_with_connection_ended(
    server: RestartableServer, auth: tuple[TokenAuth, list[int]]
) -> None:
    a, _ = auth
    async with connect(a, ws_url(server)) as ws, anyio.create_task_group() as tg:
        c = Collector(ws)
        tg.start_soon(c.run)
        await c.until(lambda: len(c.messages) > 0)
        await ws.send("not json")  # the server's protocol: 4400, and reconnecting cannot help
        await c.until(lambda: c.error is not None)
        assert isinstance(c.error, ConnectionEnded) and c.error.code == 4400
        assert ws.reconnects == 0


async def test_first_connection_with_a_dead_session_raises(
    server: RestartableServer, auth: tuple[TokenAuth, list[int]]
) -> None:
    a, _ = auth
    a.logout()
    with pytest.raises(SessionExpired):
        async with connect(a, ws_url(server)):
            pytest.fail("opened without a session")


async def test_an_error_inside_the_block_propagates_and_closes_the_socket(
    server: RestartableServer, auth: tuple[TokenAuth, list[int]]
) -> None:
    a, _ = auth
    with pytest.raises(LookupError, match="from the application"):
        async with connect(a, ws_url(server)) as ws:
            await ws.recv()
            raise LookupError("from the application")
    with anyio.fail_after(2):
        while any(getattr(c, "scope", {}).get("type") == "websocket" for c in server.connections):
            await anyio.sleep(0.02)


@pytest.mark.parametrize(
    "url",
    ["ws://evil.example/api/ws", "wss://127.0.0.1/api/ws", "http://127.0.0.1/api/ws", "api/ws"],
    ids=["foreign-host", "other-scheme-and-port", "not-ws", "relative"],
)
async def test_token_goes_only_to_the_issuers_origin_or_allowed_origins(
    server: RestartableServer, auth: tuple[TokenAuth, list[int]], url: str
) -> None:
    a, _ = auth
    with pytest.raises(ValueError, match="allowed_origins"):
        async with connect(a, url):
            pytest.fail("connected to a host that must not get the token")


async def test_allowed_origin_gets_the_socket(server: RestartableServer, clock: FakeClock) -> None:
    other = server.url.replace("127.0.0.1", "localhost")
    a = TokenAuth(f"{server.url}/auth/token", clock=clock, allowed_origins=[other])
    await a.alogin("alice", "secret")
    async with connect(a, other.replace("http://", "ws://") + "/api/ws") as ws:
        assert json.loads(await ws.recv())["type"] == "tick"
    a.close()
