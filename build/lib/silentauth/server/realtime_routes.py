"""The demo's real-time API: a WebSocket and an event stream that live through refreshes.

``/api/ws`` (WebSocket, :mod:`silentauth.resource.websocket`) sends
``{"type": "tick", "seq": n}`` every ``TICK`` seconds and answers each
``{"type": "echo", ...}`` with ``{"type": "echo", "seq": n, "data": ...}``;
``/api/events`` (:mod:`silentauth.resource.sse`) streams the same ticks and
``/api/events/renew`` extends it. Sequence numbers count per connection from 0,
so a client sees at once whether a message went missing.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator

import anyio
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from silentauth.resource.sse import EventStream, EventStreams, ServerSentEvent
from silentauth.resource.websocket import AuthenticatedWebSocket, WebSocketAuthenticator
from silentauth.server.runtime import Runtime

TICK = 0.2  # seconds between two ticks: several per access-token lifetime in tests


def _runtime(conn: HTTPConnection) -> Runtime:
    rt: Runtime = conn.app.state.runtime
    return rt


def _sockets(conn: HTTPConnection) -> WebSocketAuthenticator:
    # One per app, made on first use: the routes are module-level, the runtime per app.
    state = conn.app.state
    if getattr(state, "websockets", None) is None:
        state.websockets = WebSocketAuthenticator(_runtime(conn).authenticator)
    sockets: WebSocketAuthenticator = state.websockets
    return sockets


def _streams(conn: HTTPConnection) -> EventStreams:
    state = conn.app.state
    if getattr(state, "event_streams", None) is None:
        state.event_streams = EventStreams(_runtime(conn).authenticator)
    streams: EventStreams = state.event_streams
    return streams


async def ticker(conn: AuthenticatedWebSocket) -> None:
    """Ticks, and an echo of every application message, all numbered in one sequence."""
    seq = itertools.count()
    lock = anyio.Lock()  # one sequence, two senders: number and send as one step

    async def send(message: dict[str, object]) -> None:
        async with lock:
            await conn.send_json({**message, "seq": next(seq)})

    async def tick() -> None:
        while True:
            await send({"type": "tick"})
            await anyio.sleep(TICK)

    async with anyio.create_task_group() as tg:
        tg.start_soon(tick)
        async for message in conn:
            if message["type"] == "echo":
                await send({"type": "echo", "data": message.get("data")})
        tg.cancel_scope.cancel()


async def websocket(socket: WebSocket) -> None:
    """``/api/ws``: authenticate in-band, then tick and echo."""
    await _sockets(socket).serve(socket, ticker)


async def ticks(stream: EventStream) -> AsyncIterator[ServerSentEvent]:
    """Numbered ticks for ``/api/events``."""
    for n in itertools.count():
        yield ServerSentEvent({"type": "tick", "seq": n}, event="tick")
        await anyio.sleep(TICK)


async def events(request: Request) -> Response:
    """``GET /api/events``: the event stream, opened with ``Authorization: Bearer``."""
    return await _streams(request).open(request, ticks)


async def renew_events(request: Request) -> Response:
    """``POST /api/events/renew``: ``{"stream": id}`` with the newer token as bearer."""
    return await _streams(request).renew(request)


routes = [
    WebSocketRoute("/api/ws", websocket),
    Route("/api/events", events, methods=["GET"]),
    Route("/api/events/renew", renew_events, methods=["POST"]),
]
