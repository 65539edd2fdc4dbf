"""``POST /auth/token`` answered inside the HTTP protocol: no ASGI scope, messages or middleware.

Every refresh of every native client is a ``POST /auth/token`` with a small
form body. Served through ASGI, each one builds a scope, a request/response
cycle, an event, three messages and a wrapper per middleware, only for the
middleware to append constant headers. :class:`TokenProtocol` recognises the
route when the request head is complete and hands the collected body straight
to :meth:`TokenEndpoint.answer <silentauth.server.token_endpoint.TokenEndpoint.answer>`,
then writes head and body in one ``transport.write``.

What the ASGI stack does for this route is done here too, by
:class:`~silentauth.server.token_route.TokenRoute`, and a test compares the
two paths' answers byte for byte:

- :class:`~silentauth.server.proxy.ProxyHeadersMiddleware`: the client address
  behind a trusted proxy (rate limits and session records use it; so does
  the access log line);
- :class:`~silentauth.server.cors.CORSMiddleware`: ``Vary: Origin`` and, for a
  listed origin, its ``Access-Control-*`` headers (a preflight is an
  ``OPTIONS`` request, which never takes this path);
- :class:`~silentauth.server.headers.SecurityHeadersMiddleware`: its headers;
- :class:`~silentauth.server.errors.CatchAllMiddleware`: an unexpected error
  becomes a JSON 500, logged by type only;
- uvicorn: the ``Date`` header, the access log line, ``connection: close``
  when the client or a drain (SIGTERM) asks for it, keep-alive, pipelining.

Metrics and rate limits live in the service the endpoint calls, so both paths
count and limit alike. Anything unusual takes the ASGI path, which stays
complete: another method or path (even one that routes to the same place, as
``/auth/token?x`` or ``/auth/%74oken``), HTTP/1.0, ``Expect: 100-continue``,
an upgrade, a chunked body, a missing, repeated or oversized
``Content-Length``, a server at its concurrency limit, and an app whose
middleware changed after :func:`~silentauth.server.app.create_app` built it.
"""

from __future__ import annotations

import asyncio
import urllib.parse
from typing import Any

from starlette.applications import Starlette
from uvicorn.protocols.http.httptools_impl import (
    STATUS_LINE,
    HttpToolsProtocol,
    RequestResponseCycle,
)

from silentauth.server.parsing import MAX_BODY
from silentauth.server.token_route import TokenRoute, Unsendable
from silentauth.server.uvicorn_protocol import BoundedHttpToolsProtocol

PATH = b"/auth/token"


def _nothing() -> None:
    """The response callback once a cycle is over (uvicorn's drops its protocol the same way)."""


class TokenCycle(RequestResponseCycle):
    """One token request, standing where uvicorn's cycle stands in the protocol.

    The protocol's keep-alive, pipelining, drain and disconnect handling read
    and set the same attributes (``response_complete``, ``disconnected``,
    ``keep_alive``, ``message_event``, ``on_response``) as on uvicorn's cycle;
    the rest of that class (its ASGI ``send`` and ``receive``) is never used.
    """

    def __init__(self, protocol: TokenProtocol, route: TokenRoute, keep_alive: bool) -> None:
        # Not uvicorn's __init__: this cycle has no scope, body buffer or event.
        self.protocol = protocol
        self.route = route
        self.transport = protocol.transport
        self.flow = protocol.flow
        self.headers = protocol.headers
        self.keep_alive = keep_alive
        self.on_response = protocol.on_response_complete
        self.message_event = self  # type: ignore[assignment]  # connection_lost calls .set()
        self.disconnected = False
        self.response_complete = False
        self.chunks: list[bytes] = []
        self.body_complete = False
        self._waiter: asyncio.Future[None] | None = None

    def set(self) -> None:
        """Wake :meth:`run_asgi` if it waits for the body (it came, or the client left)."""
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def on_message_complete(self) -> None:
        """The whole body is in."""
        self.body_complete = True
        self.set()

    async def run_asgi(self, app: Any) -> None:
        """Answer the request; ``app`` (the ASGI app) is not called."""
        protocol = self.protocol
        try:
            if not self.body_complete:
                self._waiter = protocol.loop.create_future()
                await self._waiter
                if self.disconnected:
                    return  # the client left before its body was in: nothing to answer
            chunks = self.chunks
            body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
            client = self.route.client(protocol.client, self.headers)
            path = protocol.root_path + "/auth/token"
            status, lines, content = await self.route.respond(self.headers, body, client, path)
            if self.flow.write_paused and not self.disconnected:
                await self.flow.drain()
            if self.disconnected:
                return
            if protocol.access_log:  # the line uvicorn's cycle writes
                protocol.access_logger.info(
                    '%s - "%s %s HTTP/%s" %d',
                    f"{client[0]}:{client[1]:d}" if client else "",
                    "POST",
                    urllib.parse.quote(path),
                    "1.1",
                    status,
                )
            close = b"" if self.keep_alive else b"connection: close\r\n"
            self.transport.write(
                b"".join((STATUS_LINE[status], protocol.date_lines(), lines, close, b"\r\n", content))
            )
            self.response_complete = True
            if not self.keep_alive:
                self.transport.close()
            self.on_response()
        except Unsendable:
            protocol.logger.error("ASGI callable returned without completing response.")
            self.transport.close()
        except BaseException as exc:
            # What uvicorn does with an exception that escaped the app (a task
            # cancelled at the end of a drain): log it; the client gets no answer.
            protocol.logger.error("Exception in ASGI application\n", exc_info=exc)
            self.transport.close()
        finally:
            self.on_response = _nothing


class TokenProtocol(BoundedHttpToolsProtocol):
    """:class:`BoundedHttpToolsProtocol` that answers plain ``POST /auth/token`` requests itself."""

    route: TokenRoute  # set on the subclass :func:`protocol_for` makes
    _date_source: list[tuple[bytes, bytes]] | None = None
    _date_bytes = b""

    def date_lines(self) -> bytes:
        """uvicorn's default header lines (``date``; ``server`` when enabled), encoded once per tick."""
        source = self.server_state.default_headers
        if source is not self._date_source:  # uvicorn swaps in a new list once a second
            # Not through _lines' cache: a new date each second would fill it.
            lines = b"".join(name.lower() + b": " + value + b"\r\n" for name, value in source)
            TokenProtocol._date_source, TokenProtocol._date_bytes = source, lines
        return self._date_bytes

    def on_message_begin(self) -> None:
        # uvicorn's, less the ASGI scope: most requests here never need one, and the
        # ASGI path builds it in on_headers_complete.
        self.url = b""
        self.expect_100_continue = False
        self.headers = []
        self._in_head, self._head_bytes, self._raw_bytes = True, 0, 0

    def on_headers_complete(self) -> None:
        keep_alive = self._token_request()
        if keep_alive is None:
            # uvicorn's own scope, from its own code (so a key a later version adds is
            # there too), around the head this request already has.
            url, headers, expect = self.url, self.headers, self.expect_100_continue
            HttpToolsProtocol.on_message_begin(self)
            self.url, self.headers, self.expect_100_continue = url, headers, expect
            self.scope["headers"] = headers
            super().on_headers_complete()
            return
        self._in_head = False
        existing = self.cycle
        self.cycle = cycle = TokenCycle(self, self.route, keep_alive)
        if existing is None or existing.response_complete:
            self._start_asgi_task(cycle, self.app)
        else:  # pipelined: it starts when the answer before it is complete
            self.flow.pause_reading()
            self.pipeline.appendleft((cycle, self.app))

    def _token_request(self) -> bool | None:
        """Keep-alive of a plain token request this protocol answers itself; None for the ASGI path."""
        parser = self.parser
        if (
            self.url != PATH
            or parser.get_method() != b"POST"
            or parser.get_http_version() != "1.1"
            or self.expect_100_continue
            or parser.should_upgrade()
        ):
            return None
        limit = self.limit_concurrency
        if limit is not None and (len(self.connections) >= limit or len(self.tasks) >= limit):
            return None  # uvicorn's own 503
        length = None
        for name, value in self.headers:
            if name == b"content-length":
                if length is not None:
                    return None
                length = value
            elif name == b"transfer-encoding":
                return None
        if length is None or not (length.isdigit() and int(length) <= MAX_BODY):
            return None
        return bool(parser.should_keep_alive())

    def on_body(self, body: bytes) -> None:
        cycle = self.cycle
        if type(cycle) is TokenCycle:
            cycle.chunks.append(body)  # at most MAX_BODY: the length was checked
        else:
            super().on_body(body)

    def on_message_complete(self) -> None:
        cycle = self.cycle
        if type(cycle) is TokenCycle:
            cycle.on_message_complete()
        else:
            super().on_message_complete()


def protocol_for(app: object) -> type[BoundedHttpToolsProtocol]:
    """The protocol class to serve ``app`` with: :class:`TokenProtocol` for the service's own app.

    Only for an app built by :func:`~silentauth.server.app.create_app` whose
    middleware is still the one it was built with; otherwise (another app, or
    a middleware added since) every request takes the ASGI path.
    """
    route = getattr(getattr(app, "state", None), "token_route", None)
    if (
        not isinstance(app, Starlette)
        or not isinstance(route, TokenRoute)
        or tuple(app.user_middleware) != route.middleware
    ):
        return BoundedHttpToolsProtocol
    return type("ServiceProtocol", (TokenProtocol,), {"route": route})
