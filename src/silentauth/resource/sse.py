"""Server-sent event streams that stay authenticated across token refreshes.

A ``text/event-stream`` response is opened with ``Authorization: Bearer`` (a
``fetch`` stream, not ``EventSource``, which cannot send headers; the token
never goes in the URL). The stream runs until its token's ``exp``; the client
extends it by posting a newer token of the same user and session to the
companion endpoint::

    GET  /events           Authorization: Bearer <token>
    <-   event: silentauth         data: {"stream": "<id>", "exp": <epoch s>}
    <-   ...application events...
    POST /events/renew     Authorization: Bearer <newer token>
         {"stream": "<id>"}
    ->   200 {"stream": "<id>", "exp": <new deadline>}
    <-   event: silentauth-end     data: {"code": 4401, "reason": "token expired"}

The stream ends with a ``silentauth-end`` event carrying the WebSocket close
code of :mod:`silentauth.resource.lease` (4401 expired or revoked), checked
every ``check_interval`` seconds. A refused renewal (401 invalid, 403 another
user or session, 404 no such stream) does not end the stream: whoever learns
a stream id must not be able to cut someone else's stream short. Usage::

    streams = EventStreams(authenticator)

    async def ticks(stream: EventStream) -> AsyncIterator[ServerSentEvent]:
        for n in itertools.count():
            yield ServerSentEvent({"seq": n})
            await anyio.sleep(1)

    routes = [Route("/events", streams.endpoint(ticks)),
              Route("/events/renew", streams.renew, methods=["POST"])]
"""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from silentauth.errors import BearerError, InvalidRequest, OAuthError, render_json
from silentauth.resource.lease import Ending, Lease, Sweeper
from silentauth.resource.responses import error_response, rendered_response
from silentauth.resource.verify import TokenAuthenticator

MAX_RENEW_BODY = 1024
NORMAL = Ending(1000, "")


@dataclass(frozen=True)
class ServerSentEvent:
    """One event: ``data`` is sent as JSON unless it is a string (WHATWG HTML §9.2)."""

    data: Any
    event: str | None = None
    id: str | None = None

    def encode(self) -> bytes:
        """The event's wire form, ending with its blank line."""
        data = self.data if isinstance(self.data, str) else json.dumps(self.data, separators=(",", ":"))
        lines = []
        if self.event is not None:
            lines.append(f"event: {_one_line(self.event)}")
        if self.id is not None:
            lines.append(f"id: {_one_line(self.id)}")
        lines.extend(f"data: {line}" for line in data.split("\n"))
        return ("\n".join(lines) + "\n\n").encode("utf-8")


def _one_line(text: str) -> str:
    # A line break in a field name's value would start a forged field.
    return text.replace("\r", " ").replace("\n", " ")


class EventStream:
    """One open stream: its id and lease."""

    def __init__(self, stream_id: str, lease: Lease) -> None:
        self.id = stream_id
        self.lease = lease
        self.ending: Ending | None = None


Events = Callable[[EventStream], AsyncIterator[ServerSentEvent]]


class EventStreams:
    """Opens authenticated event streams and renews them.

    Args:
        authenticator: verifies tokens and answers ``is_revoked``.
        scopes: demanded of the opening token and of every renewal.
        check_interval: seconds between two checks of revocation and deadline.
        heartbeat: seconds between two comment lines that keep proxies from
            timing the stream out.
    """

    def __init__(
        self,
        authenticator: TokenAuthenticator,
        *,
        scopes: Iterable[str] = (),
        check_interval: float = 0.5,
        heartbeat: float = 15.0,
    ) -> None:
        self.authenticator = authenticator
        self.scopes = tuple(scopes)
        self.check_interval = check_interval
        self.heartbeat = heartbeat
        self.streams: dict[str, EventStream] = {}
        self.sweeper = Sweeper(check_interval)

    def endpoint(self, events: Events) -> Callable[[Request], Awaitable[Response]]:
        """A Starlette endpoint opening a stream of ``events`` for the bearer."""

        async def open_stream(request: Request) -> Response:
            return await self.open(request, events)

        return open_stream

    async def open(self, request: Request, events: Events) -> Response:
        """The streaming response, or the RFC 6750 error for a bad ``Authorization``."""
        try:
            principal = await self.authenticator.aauthenticate(request.headers.get("authorization"))
            principal.require(*self.scopes)
        except BearerError as exc:
            return error_response(exc)
        stream = EventStream(secrets.token_urlsafe(18), Lease(self.authenticator, principal, self.scopes))
        return EventStreamResponse(self, stream, events)

    async def renew(self, request: Request) -> Response:
        """The companion POST: ``{"stream": id}`` with the newer token as bearer."""
        try:
            stream_id = await _stream_id(request)
            stream = self.streams.get(stream_id)
            if stream is None:
                return rendered_response(
                    render_json(404, {"error": "not_found", "error_description": "No such event stream."},
                                {"Cache-Control": "no-store"})
                )
            token = self.authenticator.bearer(request.headers.get("authorization"))
            principal = await stream.lease.renew(token)
        except OAuthError as exc:
            return error_response(exc)
        body = json.dumps({"stream": stream.id, "exp": principal.expires_at}).encode()
        return Response(body, media_type="application/json", headers={"Cache-Control": "no-store"})


async def _stream_id(request: Request) -> str:
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_RENEW_BODY:
            raise InvalidRequest("The body is too large.")
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    stream_id = data.get("stream") if isinstance(data, dict) else None
    if not isinstance(stream_id, str) or not stream_id:
        raise InvalidRequest('Send {"stream": "<id>"} as JSON.')
    return stream_id


class EventStreamResponse(Response):
    """A ``text/event-stream`` that ends when its lease does."""

    media_type = "text/event-stream"

    def __init__(self, owner: EventStreams, stream: EventStream, events: Events) -> None:
        super().__init__(status_code=200, media_type=self.media_type)
        self.owner, self.stream, self.events = owner, stream, events
        self.raw_headers = [
            (b"content-type", b"text/event-stream; charset=utf-8"),
            (b"cache-control", b"no-store"),
            # nginx buffers proxied responses unless told not to.
            (b"x-accel-buffering", b"no"),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        stream, owner = self.stream, self.owner
        owner.streams[stream.id] = stream
        left = False
        lock = anyio.Lock()

        async def emit(chunk: bytes) -> None:
            async with lock:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})

        async def produce(scope_: anyio.CancelScope) -> None:
            # A generator cut short by the client's leaving is closed here,
            # in this task, not later by the garbage collector in no task at all.
            events = self.events(stream)
            try:
                async for event in events:
                    await emit(event.encode())
            finally:
                aclose = getattr(events, "aclose", None)
                if aclose is not None:
                    await aclose()
            _end(NORMAL, scope_)

        async def watch(scope_: anyio.CancelScope) -> None:
            await owner.sweeper.watch(stream, stream.lease, lambda ending: _end(ending, scope_))

        async def beat() -> None:
            while True:
                await anyio.sleep(owner.heartbeat)
                await emit(b": keep-alive\n\n")

        async def listen(scope_: anyio.CancelScope) -> None:
            nonlocal left
            while (await receive())["type"] != "http.disconnect":
                pass
            left = True
            scope_.cancel()

        def _end(ending: Ending, scope_: anyio.CancelScope) -> None:
            if stream.ending is None:
                stream.ending = ending
            scope_.cancel()

        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            opening = {"stream": stream.id, "exp": stream.lease.deadline}
            await emit(ServerSentEvent(opening, event="silentauth").encode())
            async with anyio.create_task_group() as tg:
                tg.start_soon(produce, tg.cancel_scope)
                tg.start_soon(watch, tg.cancel_scope)
                tg.start_soon(beat)
                tg.start_soon(listen, tg.cancel_scope)
            if not left:
                ending = stream.ending or NORMAL
                final = ServerSentEvent({"code": ending.code, "reason": ending.reason}, event="silentauth-end")
                await send({"type": "http.response.body", "body": final.encode(), "more_body": False})
        except Exception as exc:
            # The client went away while we wrote, maybe seen by one of the tasks
            # above and so wrapped in the task group's exception group. uvicorn and
            # granian return quietly from a write to a gone client; the ASGI HTTP spec
            # (2.4) lets a server raise an OSError subclass instead, which lands here.
            if not _only_oserrors(exc):
                raise
        finally:
            owner.streams.pop(stream.id, None)


def _only_oserrors(exc: BaseException) -> bool:
    if isinstance(exc, BaseExceptionGroup):
        return all(_only_oserrors(inner) for inner in exc.exceptions)
    return isinstance(exc, OSError)
