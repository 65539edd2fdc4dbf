"""WebSockets and event streams that live through refreshes, on the real server.

A real uvicorn on loopback runs the token service on a :class:`FakeClock`; the
clients are the ``websockets`` package and httpx streaming, so frames, close
codes and the event-stream wire format are the real ones. Moving the clock
past a token's ``exp`` must end a connection within one check interval (0.5 s).
"""

from __future__ import annotations

import itertools
import json
import logging
import socket
import struct
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import anyio.abc
import httpx
import pytest
from starlette.routing import Route
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from silentauth.clock import FakeClock
from silentauth.resource.sse import EventStream, EventStreams, ServerSentEvent
from silentauth.resource.websocket import WebSocketAuthenticator
from tests.conftest import LiveServer

pytestmark = pytest.mark.anyio

TTL = 60


class Realtime:
    """A live server with helpers to log in, refresh, revoke and open sockets."""

    def __init__(self, live: LiveServer, clock: FakeClock) -> None:
        self.live, self.clock = live, clock
        self.http = httpx.AsyncClient(base_url=live.url, headers={"Origin": live.url})
        self.ws_url = live.url.replace("http://", "ws://") + "/api/ws"

    async def login(self, user: str = "alice", password: str = "secret") -> dict[str, Any]:
        r = await self.http.post(
            "/auth/token", data={"grant_type": "password", "username": user, "password": password}
        )
        assert r.status_code == 200, r.text
        return dict(r.json())

    async def refresh(self, grant: dict[str, Any]) -> dict[str, Any]:
        r = await self.http.post(
            "/auth/token", data={"grant_type": "refresh_token", "refresh_token": grant["refresh_token"]}
        )
        assert r.status_code == 200, r.text
        return dict(r.json())

    async def logout(self, token: str) -> None:
        r = await self.http.post("/auth/logout", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 204, r.text

    async def open(self, token: str | None) -> ClientConnection:
        ws = await connect(self.ws_url)
        if token is not None:
            await ws.send(json.dumps({"type": "auth", "token": token}))
            ok = json.loads(await ws.recv())
            assert ok["type"] == "auth-ok", ok
        return ws


@pytest.fixture
async def rt(live_server_factory: Callable[..., LiveServer]) -> AsyncIterator[Realtime]:
    clock = FakeClock(time.time())
    live = live_server_factory(clock=clock, users={"alice": "secret", "bob": "hunter2"}, access_ttl=TTL)
    realtime = Realtime(live, clock)
    yield realtime
    await realtime.http.aclose()


def with_auth_timeout(rt: Realtime, seconds: float) -> None:
    rt.live.app.state.websockets = WebSocketAuthenticator(rt.live.runtime.authenticator, auth_timeout=seconds)


async def close_of(ws: ClientConnection, within: float = 2.0) -> tuple[int, str, list[dict[str, Any]]]:
    """Read until the server closes: (code, reason, the messages read before)."""
    seen: list[dict[str, Any]] = []
    with anyio.fail_after(within):
        try:
            while True:
                seen.append(json.loads(await ws.recv()))
        except ConnectionClosed as exc:
            assert exc.rcvd is not None, "closed without a close frame"
            return exc.rcvd.code, exc.rcvd.reason, seen


async def next_of_type(ws: ClientConnection, kind: str, within: float = 2.0) -> dict[str, Any]:
    with anyio.fail_after(within):
        while True:
            message: dict[str, Any] = json.loads(await ws.recv())
            if message["type"] == kind:
                return message


async def still_serving(rt: Realtime) -> None:
    """A fresh connection authenticates and gets ticks: the server survived."""
    grant = await rt.login()
    ws = await rt.open(grant["access_token"])
    tick = await next_of_type(ws, "tick")
    assert tick["seq"] == 0
    await ws.close()


async def test_ticks_and_echoes_are_numbered_in_one_sequence(rt: Realtime) -> None:
    grant = await rt.login()
    ws = await rt.open(grant["access_token"])
    await next_of_type(ws, "tick")
    await ws.send(json.dumps({"type": "echo", "data": "hello"}))
    seen: list[dict[str, Any]] = []
    with anyio.fail_after(3):
        while len(seen) < 6:
            seen.append(json.loads(await ws.recv()))
    await ws.close()
    assert [m["seq"] for m in seen] == list(range(1, 7))
    assert [m["data"] for m in seen if m["type"] == "echo"] == ["hello"]


async def test_reauth_moves_the_deadline_and_expiry_closes_4401(rt: Realtime) -> None:
    grant = await rt.login()
    ws = await rt.open(grant["access_token"])
    rt.clock.advance(TTL - 10)
    fresh = await rt.refresh(grant)
    await ws.send(json.dumps({"type": "reauth", "token": fresh["access_token"]}))
    ok = await next_of_type(ws, "auth-ok")
    assert ok["exp"] > time.time() + TTL - 10
    rt.clock.advance(20)  # past the first token's exp, before the second's
    await anyio.sleep(0.7)
    before = await next_of_type(ws, "tick")
    rt.clock.advance(TTL)  # past the renewed deadline
    started = time.monotonic()
    code, reason, seen = await close_of(ws)
    assert (code, reason) == (4401, "token expired")
    assert time.monotonic() - started < 1.0
    assert [m["seq"] for m in seen if m["type"] == "tick"][0] > before["seq"]


async def test_revoked_session_closes_4401_within_a_second(rt: Realtime) -> None:
    grant = await rt.login()
    ws = await rt.open(grant["access_token"])
    await next_of_type(ws, "tick")
    started = time.monotonic()
    await rt.logout(grant["access_token"])
    code, reason, _ = await close_of(ws)
    assert (code, reason) == (4401, "session revoked")
    assert time.monotonic() - started < 1.0


async def test_invalid_first_token_closes_4401(rt: Realtime) -> None:
    ws = await connect(rt.ws_url)
    await ws.send(json.dumps({"type": "auth", "token": "not.a.jwt"}))
    code, _, seen = await close_of(ws)
    assert code == 4401 and seen == []


async def test_expired_first_token_closes_4401(rt: Realtime) -> None:
    grant = await rt.login()
    rt.clock.advance(TTL + 60)
    ws = await connect(rt.ws_url)
    await ws.send(json.dumps({"type": "auth", "token": grant["access_token"]}))
    code, reason, _ = await close_of(ws)
    assert code == 4401 and "expired" in reason


async def test_sse_renewal_extends_the_stream_and_expiry_ends_it(rt: Realtime) -> None:
    grant = await rt.login()
    headers = {"Authorization": f"Bearer {grant['access_token']}"}
    async with rt.http.stream("GET", "/api/events", headers=headers) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = sse_events(response)
        kind, opening = await anext(events)
        assert kind == "silentauth"
        stream_id = opening["stream"]
        kind, tick = await anext(events)
        assert (kind, tick["seq"]) == ("tick", 0)

        bob = await rt.login("bob", "hunter2")
        refused = await rt.http.post(
            "/api/events/renew", json={"stream": stream_id}, headers={"Authorization": f"Bearer {bob['access_token']}"}
        )
        assert refused.status_code == 403
        rt.clock.advance(TTL - 10)
        fresh = await rt.refresh(grant)
        renewed = await rt.http.post(
            "/api/events/renew", json={"stream": stream_id}, headers={"Authorization": f"Bearer {fresh['access_token']}"}
        )
        assert renewed.status_code == 200, renewed.text
        rt.clock.advance(20)
        await anyio.sleep(0.7)
        kind, _ = await anext(events)
        assert kind == "tick", "the renewed stream ended at the first token's exp"
        rt.clock.advance(TTL)
        with anyio.fail_after(1.5):
            async for kind, data in events:
                if kind == "silentauth-end":
                    assert data == {"code": 4401, "reason": "token expired"}
                    break
            else:
                pytest.fail("the stream ended without its end event")


async def test_sse_without_token_is_401_and_unknown_stream_404(rt: Realtime) -> None:
    r = await rt.http.get("/api/events")
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith("Bearer")
    grant = await rt.login()
    r = await rt.http.post(
        "/api/events/renew", json={"stream": "nope"}, headers={"Authorization": f"Bearer {grant['access_token']}"}
    )
    assert r.status_code == 404
    r = await rt.http.post("/api/events/renew", content=b"[", headers={"Authorization": f"Bearer {grant['access_token']}"})
    assert r.status_code == 400


async def test_sse_revocation_ends_the_stream_within_a_second(rt: Realtime) -> None:
    grant = await rt.login()
    headers = {"Authorization": f"Bearer {grant['access_token']}"}
    async with rt.http.stream("GET", "/api/events", headers=headers) as response:
        events = sse_events(response)
        await anext(events)
        started = time.monotonic()
        await rt.logout(grant["access_token"])
        with anyio.fail_after(1.5):
            async for kind, data in events:
                if kind == "silentauth-end":
                    assert data == {"code": 4401, "reason": "session revoked"}
                    break
        assert time.monotonic() - started < 1.0


async def sse_events(response: httpx.Response) -> AsyncIterator[tuple[str, Any]]:
    """(event name, parsed data) for each event of a text/event-stream."""
    kind, data = "message", []
    async for line in response.aiter_lines():
        if line.startswith(":"):
            continue
        if line == "":
            if data:
                yield kind, json.loads("\n".join(data))
            kind, data = "message", []
        elif line.startswith("event: "):
            kind = line[len("event: ") :]
        elif line.startswith("data: "):
            data.append(line[len("data: ") :])


# --- hostile clients: each closes with its code, and the server keeps serving ---


async def test_no_auth_message_closes_4401_after_the_timeout(rt: Realtime) -> None:
    with_auth_timeout(rt, 0.3)
    ws = await connect(rt.ws_url)
    started = time.monotonic()
    code, reason, seen = await close_of(ws)
    assert (code, reason, seen) == (4401, "no auth message in time", [])
    assert 0.25 < time.monotonic() - started < 1.5
    await still_serving(rt)


async def test_application_message_before_auth_closes_4401(rt: Realtime) -> None:
    ws = await connect(rt.ws_url)
    await ws.send(json.dumps({"type": "echo", "data": "sneak"}))
    code, reason, seen = await close_of(ws)
    assert (code, reason, seen) == (4401, "authenticate first", [])


@pytest.mark.parametrize(
    "frame",
    ["not json", "[1, 2]", '{"no": "type"}', '{"type": 7}', "{" * 100_000, b"\x00binary"],
    ids=["text", "array", "untyped", "numeric-type", "deep", "binary"],
)
async def test_garbage_closes_4400_before_and_after_auth(rt: Realtime, frame: str | bytes) -> None:
    if frame == "{" * 100_000:
        frame = "[" * 50_000  # under the size limit, deeper than the JSON parser goes
    ws = await connect(rt.ws_url)
    await ws.send(frame)
    code, _, _ = await close_of(ws)
    assert code == 4400
    grant = await rt.login()
    ws = await rt.open(grant["access_token"])
    await ws.send(frame)
    code, _, _ = await close_of(ws)
    assert code == 4400
    await still_serving(rt)


async def test_oversize_message_closes_1009(rt: Realtime) -> None:
    grant = await rt.login()
    ws = await rt.open(grant["access_token"])
    await ws.send(json.dumps({"type": "echo", "data": "x" * 70_000}))
    code, reason, _ = await close_of(ws)
    assert (code, reason) == (1009, "message too big")
    await still_serving(rt)


async def test_reauth_with_another_users_token_closes_4403(rt: Realtime) -> None:
    alice, bob = await rt.login(), await rt.login("bob", "hunter2")
    ws = await rt.open(alice["access_token"])
    await ws.send(json.dumps({"type": "reauth", "token": bob["access_token"]}))
    code, reason, _ = await close_of(ws)
    assert code == 4403 and "another user or session" in reason
    await still_serving(rt)


async def test_reauth_with_another_session_of_the_same_user_closes_4403(rt: Realtime) -> None:
    first, second = await rt.login(), await rt.login()
    ws = await rt.open(first["access_token"])
    await ws.send(json.dumps({"type": "reauth", "token": second["access_token"]}))
    code, _, _ = await close_of(ws)
    assert code == 4403


async def test_reauth_with_a_forged_token_closes_4401(rt: Realtime) -> None:
    grant = await rt.login()
    ws = await rt.open(grant["access_token"])
    head, body, sig = grant["access_token"].split(".")
    await ws.send(json.dumps({"type": "reauth", "token": f"{head}.{body}.{sig[:-4]}AAAA"}))
    code, _, _ = await close_of(ws)
    assert code == 4401


async def test_reauth_flood_closes_1008(rt: Realtime) -> None:
    grant = await rt.login()
    ws = await rt.open(grant["access_token"])
    message = json.dumps({"type": "reauth", "token": grant["access_token"]})
    for _ in range(200):
        await ws.send(message)
    code, reason, seen = await close_of(ws)
    assert (code, reason) == (1008, "too many re-authentications")
    assert 1 <= sum(m["type"] == "auth-ok" for m in seen) <= 10
    await still_serving(rt)


async def test_unread_message_flood_closes_1008(rt: Realtime) -> None:
    rt.live.app.state.websockets = WebSocketAuthenticator(rt.live.runtime.authenticator, max_unread=5)
    grant = await rt.login()
    ws = await rt.open(grant["access_token"])
    for _ in range(2000):
        await ws.send('{"type": "ignored-by-the-demo"}')
    code, reason, _ = await close_of(ws, within=5)
    assert (code, reason) == (1008, "too many unread messages")
    await still_serving(rt)


async def test_clients_that_vanish_mid_stream_leave_no_connection_behind(rt: Realtime) -> None:
    grant = await rt.login()
    headers = {"Authorization": f"Bearer {grant['access_token']}"}
    for _ in range(10):
        ws = await rt.open(grant["access_token"])
        await next_of_type(ws, "tick")
        ws.transport.abort()
        async with rt.http.stream("GET", "/api/events", headers=headers) as response:
            await anext(sse_events(response))
    connections = rt.live.server.server_state.connections
    with anyio.fail_after(3):
        while len(connections) > 1 or rt.live.app.state.event_streams.streams:
            await anyio.sleep(0.05)
    await still_serving(rt)


async def test_a_client_that_closes_right_after_its_reauth_is_no_server_error(rt: Realtime) -> None:
    # The close frame arrives with the reauth: by the time the server answers auth-ok the
    # connection is closing. Found by bench/realtime.py closing 10,000 sockets mid-renewal.
    grant = await rt.login()
    fresh = (await rt.refresh(grant))["access_token"]
    errors: list[str] = []
    handler = logging.Handler(logging.ERROR)
    handler.emit = lambda record: errors.append(record.getMessage())  # type: ignore[method-assign]
    uvicorn_errors = logging.getLogger("uvicorn.error")  # the ASGI server's: it does not propagate
    uvicorn_errors.addHandler(handler)
    try:
        for _ in range(20):
            ws = await rt.open(grant["access_token"])
            await ws.send(json.dumps({"type": "reauth", "token": fresh}))
            await ws.close()
        connections = rt.live.server.server_state.connections
        with anyio.fail_after(3):
            while len(connections) > 1:
                await anyio.sleep(0.05)
    finally:
        uvicorn_errors.removeHandler(handler)
    assert errors == []
    await still_serving(rt)


class UvicornErrors:
    """Collects what the ASGI server logs as errors ("Exception in ASGI application")."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.handler = logging.Handler(logging.ERROR)
        self.handler.emit = self._emit  # type: ignore[method-assign]
        self.logger = logging.getLogger("uvicorn.error")  # the ASGI server's: it does not propagate

    def _emit(self, record: logging.LogRecord) -> None:
        self.errors.append(record.getMessage() + (f" {record.exc_info[1]!r}" if record.exc_info else ""))

    def __enter__(self) -> UvicornErrors:
        self.logger.addHandler(self.handler)
        return self

    def __exit__(self, *exc: object) -> None:
        self.logger.removeHandler(self.handler)


async def vanish(ws: ClientConnection, rude: bool) -> None:
    """Leave with a close frame, or rudely by dropping the TCP connection."""
    if rude:
        ws.transport.abort()
    await ws.close()


async def wait_for_no_sockets(rt: Realtime, within: float = 3.0) -> None:
    """Until the server has finished every WebSocket (HTTP keep-alive ones may stay)."""
    connections = rt.live.server.server_state.connections
    with anyio.fail_after(within):
        while any("websockets" in type(c).__module__ for c in connections):
            await anyio.sleep(0.05)


async def test_clients_vanishing_at_any_moment_are_no_server_error(rt: Realtime) -> None:
    # Each socket leaves at another moment, half of them by dropping TCP, all at once so
    # the server is still pushing ticks and echoes to some when the others' ends arrive.
    # Under load this raised WebSocketDisconnect out of the app, wrapped in exception groups.
    grant = await rt.login()
    fresh = (await rt.refresh(grant))["access_token"]
    token = grant["access_token"]

    async def before_auth(ws: ClientConnection, rude: bool) -> None:
        await vanish(ws, rude)

    async def during_auth(ws: ClientConnection, rude: bool) -> None:
        await ws.send(json.dumps({"type": "auth", "token": token}))
        await vanish(ws, rude)

    async def after_auth(ws: ClientConnection, rude: bool) -> None:
        await ws.send(json.dumps({"type": "auth", "token": token}))
        await next_of_type(ws, "auth-ok")
        await vanish(ws, rude)

    async def after_reauth(ws: ClientConnection, rude: bool) -> None:
        await ws.send(json.dumps({"type": "auth", "token": token}))
        await next_of_type(ws, "auth-ok")
        await ws.send(json.dumps({"type": "reauth", "token": fresh}))
        await vanish(ws, rude)

    async def during_push(ws: ClientConnection, rude: bool) -> None:
        await ws.send(json.dumps({"type": "auth", "token": token}))
        await next_of_type(ws, "tick")
        for n in range(20):  # the server is busy answering these when we leave
            await ws.send(json.dumps({"type": "echo", "data": "x" * 2000, "n": n}))
        await vanish(ws, rude)

    moments = [before_auth, during_auth, after_auth, after_reauth, during_push]

    async def one(i: int) -> None:
        ws = await connect(rt.ws_url)
        await moments[i % len(moments)](ws, rude=(i // len(moments)) % 2 == 1)

    with UvicornErrors() as log:
        for _ in range(3):
            async with anyio.create_task_group() as tg:
                for i in range(40):
                    tg.start_soon(one, i)
            await wait_for_no_sockets(rt)
    assert log.errors == []
    await still_serving(rt)


async def test_clients_vanishing_while_the_sweeper_closes_them_are_no_server_error(rt: Realtime) -> None:
    # A logout revokes the session: the sweeper closes every socket 4401 while the
    # clients, busy being pushed to, drop one after another around its check.
    with UvicornErrors() as log:
        for _ in range(2):
            grant = await rt.login()
            sockets: list[ClientConnection] = []
            async with anyio.create_task_group() as tg:
                for _ in range(16):
                    tg.start_soon(_append_open, rt, grant["access_token"], sockets)
            for n, ws in enumerate(sockets):
                await ws.send(json.dumps({"type": "echo", "data": "x" * 2000, "n": n}))
            await rt.logout(grant["access_token"])

            async def leave(i: int, ws: ClientConnection) -> None:
                await anyio.sleep(0.04 * i)  # spread across the sweeper's next check (0.5 s)
                with anyio.fail_after(3):
                    await vanish(ws, i % 2 == 1)

            async with anyio.create_task_group() as tg:
                for i, ws in enumerate(sockets):
                    tg.start_soon(leave, i, ws)
            await wait_for_no_sockets(rt)
    assert log.errors == []
    await still_serving(rt)


async def _append_open(rt: Realtime, token: str, into: list[ClientConnection]) -> None:
    into.append(await rt.open(token))


# --- event streams whose clients vanish while the server pushes ---


class Flood:
    """An event source that writes as fast as the connection takes it (32 KiB events).

    A client that stops reading fills the socket buffers, so the server is parked in a
    write (uvicorn's flow control) at the moment the client goes. Each source records
    whether it was closed by the task that ran it; a source left for the garbage
    collector would be closed later, in a task of the event loop's asyncgen hook.
    """

    def __init__(self) -> None:
        self.started = 0
        self.closed: list[bool] = []  # per source: closed in the task that iterated it

    async def __call__(self, stream: EventStream) -> AsyncIterator[ServerSentEvent]:
        self.started += 1
        task = anyio.get_current_task().id
        try:
            for n in itertools.count():
                # No await of its own: the stream's write is where it waits, and where
                # the client's leaving finds it, suspended at this yield.
                yield ServerSentEvent({"n": n, "pad": "x" * 32_768}, event="flood")
        finally:
            self.closed.append(anyio.get_current_task().id == task)


async def raw_stream(rt: Realtime, path: str, token: str) -> anyio.abc.SocketStream:
    """A bare TCP client that sent its GET and read the stream's first bytes, then reads no more."""
    port = int(rt.live.url.rsplit(":", 1)[1])
    sock = await anyio.connect_tcp("127.0.0.1", port)
    await sock.send(f"GET {path} HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {token}\r\n\r\n".encode())
    with anyio.fail_after(2):
        head = await sock.receive()
    assert head.startswith(b"HTTP/1.1 200"), head[:200]
    return sock


async def drop(sock: anyio.abc.SocketStream, rude: bool) -> None:
    """Leave with FIN, or with RST (SO_LINGER 0: the kernel discards what is unread)."""
    if rude:
        raw = sock.extra(anyio.abc.SocketAttribute.raw_socket)
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    await sock.aclose()


async def test_event_stream_clients_vanishing_mid_push_are_no_server_error(rt: Realtime) -> None:
    # uvicorn returns quietly from a write to a client that is gone, so what must hold is
    # that each stream sees the client leave (http.disconnect), ends, closes its source in
    # its own task, forgets its id, and nothing reaches the ASGI server's error log.
    # (The OSError guard in EventStreamResponse is for servers that raise on such a write,
    # as the ASGI HTTP spec 2.4 allows; uvicorn does not, so it cannot fail here.)
    flood = Flood()
    streams = EventStreams(rt.live.runtime.authenticator, check_interval=0.2)
    rt.live.app.router.routes.append(Route("/test/flood", streams.endpoint(flood)))
    token = (await rt.login())["access_token"]
    with UvicornErrors() as log:
        for _ in range(2):
            socks = []
            for i in range(12):
                path = "/test/flood" if i % 3 else "/api/events"  # the demo's ticks too
                socks.append((await raw_stream(rt, path, token), i % 2 == 1))
            connections = rt.live.server.server_state.connections
            with anyio.fail_after(3):  # every flood parked in a write on a full socket buffer
                while sum(c.flow.write_paused for c in connections if hasattr(c, "flow")) < 8:
                    await anyio.sleep(0.02)
            async with anyio.create_task_group() as tg:
                for sock, rude in socks:
                    tg.start_soon(drop, sock, rude)
            with anyio.fail_after(3):
                while streams.streams or rt.live.app.state.event_streams.streams or len(flood.closed) < flood.started:
                    await anyio.sleep(0.05)
    assert flood.started == 16 and all(flood.closed) and log.errors == []
    await still_serving(rt)
    async with rt.http.stream("GET", "/api/events", headers={"Authorization": f"Bearer {token}"}) as response:
        assert [kind async for kind, _ in _first(sse_events(response), 2)] == ["silentauth", "tick"]


async def _first(events: AsyncIterator[tuple[str, Any]], n: int) -> AsyncIterator[tuple[str, Any]]:
    for _ in range(n):
        yield await anext(events)
