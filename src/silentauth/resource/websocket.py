"""WebSocket connections that stay authenticated across token refreshes.

The token never goes in the URL, where proxy and access logs would keep it:
the client sends it in the first message, and a newer one before each expiry::

    client -> {"type": "auth", "token": "<access token>"}      within auth_timeout
    server -> {"type": "auth-ok", "exp": <epoch seconds>}
    ...application messages, both ways (JSON objects)...
    client -> {"type": "reauth", "token": "<newer token>"}     same user and session
    server -> {"type": "auth-ok", "exp": <new deadline>}

The connection's deadline is the token's ``exp``; it ends with the close
codes of :mod:`silentauth.resource.lease` when the deadline passes, when the
session is revoked (checked every ``check_interval`` seconds, 0.5 by
default), or on a renewal for anyone else. Usage with Starlette or FastAPI::

    realtime = WebSocketAuthenticator(authenticator)

    async def chat(conn: AuthenticatedWebSocket) -> None:
        async for message in conn:           # application messages only
            await conn.send_json({"echo": message, "from": conn.principal.subject})

    routes = [WebSocketRoute("/ws", realtime.endpoint(chat))]

The message types ``auth``, ``reauth`` and ``auth-ok`` are reserved; every
other JSON object is handed to the application, anything else closes 4400.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from starlette.websockets import WebSocket, WebSocketDisconnect

from silentauth.errors import BearerError
from silentauth.resource.lease import (
    CLOSE_BAD_MESSAGE,
    CLOSE_POLICY,
    CLOSE_TOO_BIG,
    CLOSE_UNAUTHENTICATED,
    Ending,
    Lease,
    Sweeper,
    authenticate,
    ending_for,
)
from silentauth.resource.verify import Principal, TokenAuthenticator

Handler = Callable[["AuthenticatedWebSocket"], Awaitable[None]]

NORMAL = Ending(1000, "")
NO_AUTH = Ending(CLOSE_UNAUTHENTICATED, "no auth message in time")
HANDLER_FAILED = Ending(1011, "internal error")
RESERVED = frozenset({"auth", "reauth", "auth-ok"})
# What Starlette and the ASGI server raise at a socket whose peer has gone: a close
# frame or a dropped TCP connection can arrive at any await. WebSocketDisconnected
# (a RuntimeError) is Starlette's answer to a send after the state went DISCONNECTED.
GONE: tuple[type[Exception], ...] = (WebSocketDisconnect, OSError, RuntimeError)
ENDED = (WebSocketDisconnect, anyio.EndOfStream, anyio.ClosedResourceError)


def only_ended(exc: BaseException) -> bool:
    """Whether ``exc`` says nothing but "the connection ended", however deeply grouped.

    A handler that sends from its own task group (ticks next to echoes) raises the
    disconnect wrapped in one exception group per task group it crossed.
    """
    if isinstance(exc, BaseExceptionGroup):
        return all(only_ended(inner) for inner in exc.exceptions)
    return isinstance(exc, ENDED)


class _Bucket:
    """A token bucket: ``burst`` at once, then ``rate`` per second."""

    def __init__(self, burst: int, rate: float, monotonic: Callable[[], float]) -> None:
        self.capacity, self.rate, self.monotonic = float(burst), rate, monotonic
        self.level, self.at = float(burst), monotonic()

    def take(self) -> bool:
        now = self.monotonic()
        self.level = min(self.capacity, self.level + (now - self.at) * self.rate)
        self.at = now
        if self.level < 1.0:
            return False
        self.level -= 1.0
        return True


class WebSocketAuthenticator:
    """Accepts WebSockets that authenticate in-band and keeps them honest.

    Args:
        authenticator: verifies tokens and answers ``is_revoked``.
        scopes: demanded of the first token and of every renewal (else 4403).
        auth_timeout: seconds the first message may take (else 4401).
        check_interval: seconds between two checks of revocation and deadline.
        max_message: largest text frame accepted, in bytes of UTF-8 (else 1009).
        max_unread: application messages queued before the app reads them (else 1008).
        reauth_burst, reauth_per_second: the re-authentication budget (else 1008);
            an honest client sends one per token.
    """

    def __init__(
        self,
        authenticator: TokenAuthenticator,
        *,
        scopes: Iterable[str] = (),
        auth_timeout: float = 5.0,
        check_interval: float = 0.5,
        max_message: int = 64 * 1024,
        max_unread: int = 100,
        reauth_burst: int = 10,
        reauth_per_second: float = 2.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.authenticator = authenticator
        self.scopes = tuple(scopes)
        self.auth_timeout = auth_timeout
        self.check_interval = check_interval
        self.max_message = max_message
        self.max_unread = max_unread
        self.reauth_burst = reauth_burst
        self.reauth_per_second = reauth_per_second
        self.monotonic = monotonic
        self.sweeper = Sweeper(check_interval)

    def endpoint(self, handler: Handler) -> Callable[[WebSocket], Awaitable[None]]:
        """A Starlette ``WebSocketRoute`` endpoint running ``handler`` once authenticated."""

        async def app(websocket: WebSocket) -> None:
            await self.serve(websocket, handler)

        return app

    async def serve(self, websocket: WebSocket, handler: Handler) -> Ending | None:
        """Accept ``websocket``, authenticate it, run ``handler`` until the connection ends.

        Returns how the server closed it (``None`` if the client left first).
        ``handler`` is cancelled when the connection must end; it never runs
        for a connection that failed to authenticate.
        """
        try:
            await websocket.accept()
        except GONE:
            return None  # dropped during the handshake: nobody to serve
        conn = AuthenticatedWebSocket(self, websocket)
        return await conn.run(handler)


class AuthenticatedWebSocket:
    """One authenticated connection, as the application's handler sees it."""

    def __init__(self, owner: WebSocketAuthenticator, websocket: WebSocket) -> None:
        self.owner = owner
        self.websocket = websocket
        self.lease: Lease | None = None
        self.ending: Ending | None = None
        self._left = False
        send, receive = anyio.create_memory_object_stream[dict[str, Any]](owner.max_unread)
        self._inbox_in: MemoryObjectSendStream[dict[str, Any]] = send
        self._inbox: MemoryObjectReceiveStream[dict[str, Any]] = receive
        self._bucket = _Bucket(owner.reauth_burst, owner.reauth_per_second, owner.monotonic)
        self._scope: anyio.CancelScope | None = None

    @property
    def principal(self) -> Principal:
        """Who the connection runs as, with the latest accepted token's claims."""
        if self.lease is None:
            raise RuntimeError("not authenticated yet")
        return self.lease.principal

    async def send_json(self, data: Any) -> None:
        """Send one JSON text frame.

        Raises ``WebSocketDisconnect`` if the client has gone (the connection then
        ends as if it had closed first); the handler may let it propagate.
        """
        text = json.dumps(data, separators=(",", ":"))
        if self._left:
            raise WebSocketDisconnect(1006)
        try:
            await self.websocket.send_text(text)
        except GONE as exc:
            self._gone()
            raise WebSocketDisconnect(1006) from exc

    def _gone(self) -> None:
        """The client left: end without a close frame of ours."""
        self._left = True
        self.end(NORMAL)

    async def receive(self) -> dict[str, Any]:
        """The next application message; raises ``anyio.EndOfStream`` once closed."""
        return await self._inbox.receive()

    async def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        async for message in self._inbox:
            yield message

    def end(self, ending: Ending) -> None:
        """Close the connection with ``ending`` (the first reason given wins)."""
        if self.ending is None and not self._left:
            self.ending = ending
        if self._scope is not None:
            self._scope.cancel()

    # -- the connection's life --------------------------------------------------------

    async def run(self, handler: Handler) -> Ending | None:
        """Authenticate, then serve until something ends the connection."""
        try:
            if await self._first_auth():
                async with anyio.create_task_group() as tg:
                    self._scope = tg.cancel_scope
                    tg.start_soon(self._read)
                    tg.start_soon(self._watch)
                    tg.start_soon(self._handle, handler)
        finally:
            self._inbox_in.close()
            await self._close()
        return self.ending

    async def _close(self) -> None:
        if self._left or self.ending is None:
            return
        try:
            await self.websocket.close(self.ending.code, self.ending.reason)
        except (RuntimeError, OSError, WebSocketDisconnect):
            pass  # the client went away meanwhile: nothing left to tell it

    async def _first_auth(self) -> bool:
        message: dict[str, Any] | None = None
        with anyio.move_on_after(self.owner.auth_timeout):
            message = await self._next()
        if message is None:
            self.end(NO_AUTH)
            return False
        if self.ending is not None or self._left:
            return False
        if message.get("type") != "auth":
            self.end(Ending(CLOSE_UNAUTHENTICATED, "authenticate first"))
            return False
        try:
            principal = await authenticate(
                self.owner.authenticator, message.get("token"), self.owner.scopes
            )
        except BearerError as exc:
            self.end(ending_for(exc))
            return False
        self.lease = Lease(self.owner.authenticator, principal, self.owner.scopes)
        try:
            await self.send_json({"type": "auth-ok", "exp": principal.expires_at})
        except WebSocketDisconnect:
            return False  # gone between its auth message and our answer
        return True

    async def _next(self) -> dict[str, Any] | None:
        """The next frame as a JSON object; ``None`` after ending (client gone or bad frame)."""
        try:
            frame = await self.websocket.receive()
        except (RuntimeError, WebSocketDisconnect):
            frame = {"type": "websocket.disconnect"}
        if frame["type"] == "websocket.disconnect":
            self._left = True
            self.end(NORMAL)
            return None
        text = frame.get("text")
        if text is None:
            self.end(Ending(CLOSE_BAD_MESSAGE, "binary frames are not accepted"))
            return None
        if len(text) > self.owner.max_message or len(text.encode("utf-8", "replace")) > self.owner.max_message:
            self.end(Ending(CLOSE_TOO_BIG, "message too big"))
            return None
        try:
            message = json.loads(text)
        except (ValueError, RecursionError):
            message = None
        if not isinstance(message, dict) or not isinstance(message.get("type"), str):
            self.end(Ending(CLOSE_BAD_MESSAGE, "expected a JSON object with a type"))
            return None
        return message

    async def _read(self) -> None:
        while True:
            message = await self._next()
            if message is None:
                return
            if message["type"] in ("auth", "reauth"):
                await self._reauth(message)
            elif message["type"] in RESERVED:
                self.end(Ending(CLOSE_BAD_MESSAGE, "auth-ok is sent by the server"))
            else:
                try:
                    self._inbox_in.send_nowait(message)
                except anyio.WouldBlock:
                    self.end(Ending(CLOSE_POLICY, "too many unread messages"))

    async def _reauth(self, message: dict[str, Any]) -> None:
        assert self.lease is not None  # noqa: S101 - _read starts after _first_auth
        if not self._bucket.take():
            self.end(Ending(CLOSE_POLICY, "too many re-authentications"))
            return
        try:
            principal = await self.lease.renew(message.get("token"))
        except BearerError as exc:
            self.end(ending_for(exc))
            return
        try:
            await self.send_json({"type": "auth-ok", "exp": principal.expires_at})
        except WebSocketDisconnect:
            pass  # gone (or closing) between its reauth and our answer: an ordinary end

    async def _watch(self) -> None:
        assert self.lease is not None  # noqa: S101 - started after _first_auth
        await self.owner.sweeper.watch(self, self.lease, self.end)

    async def _handle(self, handler: Handler) -> None:
        try:
            await handler(self)
        except Exception as exc:
            # The client gone under a send, or the inbox closed under a reader,
            # possibly grouped by the handler's own task groups: an ordinary end.
            if not only_ended(exc):
                self.end(HANDLER_FAILED)
                raise
            if _any_disconnect(exc):
                self._gone()
        self.end(NORMAL)


def _any_disconnect(exc: BaseException) -> bool:
    if isinstance(exc, BaseExceptionGroup):
        return any(_any_disconnect(inner) for inner in exc.exceptions)
    return isinstance(exc, WebSocketDisconnect)
