"""A WebSocket that stays authenticated across token refreshes, for asyncio code.

Needs the ``websockets`` package (``pip install 'silentauth[websockets]'``)::

    async with realtime.connect(auth, "wss://api.example.com/ws") as ws:
        await ws.send({"type": "echo", "data": "hi"})
        async for message in ws:                 # application messages, as text
            print(message)

The protocol is the one of ``silentauth.resource.websocket``: the token goes
in the first message, never in the URL; every newer token (refreshed here,
by another process sharing the store, or pushed by a server) is sent as
``{"type": "reauth"}`` before the old one expires. A dropped connection is
reopened with a fresh token and exponential back-off; a 4401 close (expired,
revoked) triggers one refresh, and if the session is over the connection ends
with :class:`~silentauth.errors.SessionExpired` (``on_session_expired`` is
called once by :class:`~silentauth.client.TokenAuth`). Codes after which
reconnecting cannot help end it with :class:`~silentauth.errors.ConnectionEnded`.
"""

from __future__ import annotations

import contextlib
import json
import random
from collections.abc import AsyncIterator
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from silentauth.client.auth import TokenAuth
from silentauth.errors import ConnectionEnded, RefreshFailed, SessionExpired

# The server's codes (silentauth.resource.lease), repeated: the client imports no
# service-side module. 4401 means "refresh and come back"; these mean "do not".
UNAUTHENTICATED = 4401
FINAL = frozenset({1000, 1008, 1009, 4400, 4403})
Message = str | bytes


class _Closed(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(code, reason)
        self.code, self.reason = code, reason


def _is_auth_ok(frame: Message) -> bool:
    if not isinstance(frame, str) or "auth-ok" not in frame:
        return False
    try:
        message = json.loads(frame)
    except ValueError:
        return False
    return isinstance(message, dict) and message.get("type") == "auth-ok"


class RealtimeConnection:
    """One logical connection: survives refreshes, drops and server restarts.

    Made by :func:`connect`; ``reconnects`` counts the times it was reopened.
    """

    def __init__(
        self,
        auth: TokenAuth,
        url: str,
        *,
        check_interval: float,
        auth_timeout: float,
        min_delay: float,
        max_delay: float,
        options: dict[str, Any],
    ) -> None:
        self.auth, self.url = auth, url
        self.check_interval, self.auth_timeout = check_interval, auth_timeout
        self.min_delay, self.max_delay = min_delay, max_delay
        self.options = options
        self.reconnects = 0
        self._socket: ClientConnection | None = None
        self._sent: str | None = None
        self._ready = anyio.Event()
        self._ending: Exception | None = None
        self._failures = 0
        send, receive = anyio.create_memory_object_stream[Message](1000)
        self._inbox_in: MemoryObjectSendStream[Message] = send
        self._inbox: MemoryObjectReceiveStream[Message] = receive
        self._scope: anyio.CancelScope | None = None

    # -- the application's side ---------------------------------------------------

    async def recv(self) -> Message:
        """The next application message; raises how the connection ended once it has."""
        try:
            return await self._inbox.receive()
        except anyio.EndOfStream:
            raise self._ending or ConnectionEnded(1000, "") from None

    async def __aiter__(self) -> AsyncIterator[Message]:
        """Application messages until the connection ends (quietly on a normal close)."""
        while True:
            try:
                yield await self.recv()
            except ConnectionEnded as exc:
                if exc.code == 1000:
                    return
                raise

    async def send(self, message: Message | dict[str, Any]) -> None:
        """Send text, bytes or a JSON object; waits while the connection is being reopened.

        A message whose send fails because the socket just closed is sent again
        on the next connection, so it may arrive twice, never not at all.
        """
        data = json.dumps(message, separators=(",", ":")) if isinstance(message, dict) else message
        while True:
            await self._ready.wait()
            if self._ending is not None:
                raise self._ending
            socket = self._socket
            if socket is None:
                continue
            try:
                await socket.send(data)
                return
            except ConnectionClosed:
                await anyio.sleep(0)  # the supervisor swaps in a new _ready first

    async def aclose(self) -> None:
        """Close for good (code 1000)."""
        self._end(ConnectionEnded(1000, ""))
        if self._scope is not None:
            self._scope.cancel()
        socket, self._socket = self._socket, None
        if socket is not None:
            with contextlib.suppress(ConnectionClosed, OSError):
                await socket.close()

    # -- the connection's life ----------------------------------------------------

    def _end(self, error: Exception) -> None:
        if self._ending is None:
            self._ending = error
        self._inbox_in.close()
        self._ready.set()  # senders wake and see the ending

    async def _open(self) -> None:
        tokens = await self.auth.aensure_fresh()
        try:
            socket = await ws_connect(self.url, **self.options)
        except (OSError, InvalidHandshake, TimeoutError) as exc:
            raise _Closed(1006, type(exc).__name__) from exc
        try:
            await socket.send(json.dumps({"type": "auth", "token": tokens.access_token}))
            with anyio.fail_after(self.auth_timeout):
                first = await socket.recv()
        except ConnectionClosed as exc:
            rcvd = exc.rcvd
            raise _Closed(rcvd.code if rcvd else 1006, rcvd.reason if rcvd else "") from exc
        except TimeoutError as exc:
            await socket.close()
            raise _Closed(1006, "no auth-ok in time") from exc
        if not _is_auth_ok(first):
            await socket.close()
            raise _Closed(1006, "the server did not acknowledge the token")
        self._socket, self._sent, self._failures = socket, tokens.access_token, 0
        self._ready.set()

    async def _serve(self) -> tuple[int, str]:
        """Read the open socket and keep it authenticated until it closes."""
        socket = self._socket
        assert socket is not None  # noqa: S101 - only after a successful _open
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._keep, socket)
            try:
                async for frame in socket:
                    if not _is_auth_ok(frame):
                        await self._inbox_in.send(frame)
            except (ConnectionClosed, anyio.ClosedResourceError):
                pass
            tg.cancel_scope.cancel()
        self._socket = None
        self._ready = anyio.Event()
        return socket.close_code or 1006, socket.close_reason or ""

    async def _keep(self, socket: ClientConnection) -> None:
        """Send every newer token before the one the server holds expires."""
        while True:
            await anyio.sleep(self.check_interval)
            try:
                tokens = await self.auth.aensure_fresh()
            except RefreshFailed:
                continue  # transient: retried next round, the server's deadline decides
            except SessionExpired as exc:
                self._end(exc)
                await socket.close()
                return
            if tokens.access_token != self._sent:
                self._sent = tokens.access_token
                with contextlib.suppress(ConnectionClosed):
                    await socket.send(json.dumps({"type": "reauth", "token": tokens.access_token}))

    async def supervise(self) -> None:
        """Serve, and after each close decide: end, or refresh and/or wait, then reopen.

        Runs in a cancel scope of its own, so that :meth:`aclose` stops it alone and
        never cancels (or swallows an error of) the code around the connection.
        """
        with anyio.CancelScope() as scope:
            self._scope = scope
            await self._supervise()

    async def _supervise(self) -> None:
        while True:
            code, reason = await self._serve()
            while True:
                if self._ending is not None:
                    return
                if not await self._recover(code, reason):
                    return
                try:
                    await self._open()
                except SessionExpired as exc:
                    self._end(exc)
                    return
                except _Closed as exc:
                    code, reason = exc.code, exc.reason
                    continue
                self.reconnects += 1
                break

    async def _recover(self, code: int, reason: str) -> bool:
        """After a close with ``code``: False to end, True once it is time to reopen."""
        if code in FINAL:
            self._end(ConnectionEnded(code, reason))
            return False
        if code == UNAUTHENTICATED:
            try:
                await self._force_refresh()
            except SessionExpired as exc:
                self._end(exc)
                return False
            except RefreshFailed:
                pass  # waited out below, then retried with whatever token there is
        base = 0.0 if self._failures == 0 else min(self.max_delay, self.min_delay * 2 ** (self._failures - 1))
        self._failures += 1
        # Half to full delay: clients of a restarted server must not return in lockstep.
        await anyio.sleep(base * random.uniform(0.5, 1.0))  # noqa: S311 - jitter, not secrecy
        return True

    async def _force_refresh(self) -> None:
        # The server refused the token we sent: a refresh (shared with every other caller
        # of this TokenAuth) unless someone already replaced it.
        current = self.auth.tokens
        if current is not None and current.access_token != self._sent:
            return
        await self.auth._aobtain(current, force=True)


@contextlib.asynccontextmanager
async def connect(
    auth: TokenAuth,
    url: str,
    *,
    check_interval: float = 0.5,
    auth_timeout: float = 10.0,
    min_delay: float = 0.5,
    max_delay: float = 30.0,
    **options: Any,
) -> AsyncIterator[RealtimeConnection]:
    """Open ``url`` (ws: or wss:) authenticated by ``auth``; close it on exit.

    Only to the issuer's origin or one of ``allowed_origins`` (``wss://`` as
    ``https://``), else ``ValueError``: the first message carries the token.
    ``check_interval``: seconds between two looks for a newer token;
    ``min_delay``/``max_delay``: reconnection back-off; other keyword arguments
    go to :func:`websockets.asyncio.client.connect`. The first connection's
    failure is raised here (:class:`~silentauth.errors.SessionExpired`,
    :class:`~silentauth.errors.ConnectionEnded`, or ``OSError``).
    """
    http_url = "http" + url[2:] if url.lower().startswith("ws") else url
    if not url.lower().startswith(("ws://", "wss://")) or not auth.origins.allows(http_url):
        # The same rule as for requests: the token goes to the issuer and allowed_origins only.
        raise ValueError(
            f"{url!r} is not a ws:// or wss:// URL on the issuer's origin or one of allowed_origins"
        )
    conn = RealtimeConnection(
        auth,
        url,
        check_interval=check_interval,
        auth_timeout=auth_timeout,
        min_delay=min_delay,
        max_delay=max_delay,
        options=options,
    )
    try:
        await conn._open()
    except _Closed as exc:
        if exc.code == 1006 and isinstance(exc.__cause__, OSError | InvalidHandshake | TimeoutError):
            raise exc.__cause__ from None
        raise ConnectionEnded(exc.code, exc.reason) from None
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(conn.supervise)
            try:
                yield conn
            finally:
                await conn.aclose()
    except BaseExceptionGroup as group:
        # The task group wraps the block's own error: hand it back as raised.
        if len(group.exceptions) == 1:
            raise group.exceptions[0] from None
        raise
