"""A uvicorn HTTP protocol (httptools) with a bound on the request head, one write per answer.

``silentauth serve`` runs uvicorn with :class:`BoundedHttpToolsProtocol`.

httptools buffers a request's headers without limit, so one connection could
make the server hold a 30 MB header. Here the request line and headers may
total :data:`MAX_HEAD_BYTES` (counted as the parser reports them), and a head
still incomplete after :data:`MAX_RAW_HEAD_BYTES` received bytes (one endless
header) is cut off too. Either way: 400 and the connection is closed.

uvicorn writes a response's head and its body with two ``transport.write``
calls: two ``send`` system calls, two TCP segments, and a client that wakes
twice (once for a head it cannot use alone). :class:`OneWriteCycle` holds the
head of an answer whose ``content-length`` is known and writes it together
with the first body chunk: one system call per answer. Answers of unknown
length (streams: their head must leave before the first event) and HEAD
answers keep uvicorn's path, as does anything else unusual.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.http.httptools_impl import (
    HEADER_RE,
    HEADER_VALUE_RE,
    STATUS_LINE,
    HttpToolsProtocol,
    RequestResponseCycle,
)
from uvicorn.protocols.utils import get_client_addr, get_path_with_query_string

from silentauth.errors import HeadTooLarge

# Header lines already checked against uvicorn's rules. Most are constants
# (security headers, content type, cache control), so the two regular-expression
# scans per header run once per process instead of once per answer; the bound
# keeps values that vary (content-length, date) from growing it without limit.
_CHECKED: set[tuple[bytes, bytes]] = set()
_CHECKED_MAX = 512


class OneWriteCycle(RequestResponseCycle):
    """uvicorn's request/response cycle, writing a fixed-length answer's head with its body."""

    _head: bytes | None = None

    async def send(self, message: Any) -> None:
        kind = message["type"]
        if kind == "http.response.start" and not self.response_started:
            head = self._fixed_length_head(message)
            if head is not None:
                if self.access_log:  # the line uvicorn's own path writes
                    self.access_logger.info(
                        '%s - "%s %s HTTP/%s" %d',
                        get_client_addr(self.scope),
                        self.scope["method"],
                        get_path_with_query_string(self.scope),
                        self.scope["http_version"],
                        message["status"],
                    )
                self._head = head
                self.response_started = True
                self.waiting_for_100_continue = False
                return
        elif kind == "http.response.body" and self._head is not None:
            head, self._head = self._head, None
            if self.disconnected:
                return
            body: bytes = message.get("body", b"")
            more_body = message.get("more_body", False)
            if len(body) > self.expected_content_length:
                raise RuntimeError("Response content longer than Content-Length")
            self.expected_content_length -= len(body)
            self.transport.write(head + body)
            if not more_body:
                if self.expected_content_length != 0:
                    raise RuntimeError("Response content shorter than Content-Length")
                self.response_complete = True
                self.message_event.set()
                if not self.keep_alive:  # a drain (SIGTERM) began while this answer was under way
                    self.transport.close()
                # Resumes reading, starts a pipelined request or arms keep-alive.
                self.on_response()
            return
        await super().send(message)

    def _fixed_length_head(self, message: Any) -> bytes | None:
        """The head as uvicorn would write it, or None when uvicorn's own path must run.

        That path keeps the cases this one does not handle: a paused or
        closed transport, a connection to close, HEAD, no ``content-length``
        (chunked), and headers it must refuse.
        """
        if (
            self.flow.write_paused
            or self.disconnected
            or not self.keep_alive
            or self.scope["method"] == "HEAD"
        ):
            return None
        status: int = message["status"]
        content = [STATUS_LINE[status]]
        length = -1
        for name, value in (*self.default_headers, *message.get("headers", ())):
            if (name, value) not in _CHECKED:
                if HEADER_RE.search(name) or HEADER_VALUE_RE.search(value):
                    return None  # uvicorn raises its own error for it
                if len(_CHECKED) < _CHECKED_MAX:
                    _CHECKED.add((name, value))
            name = name.lower()
            if name == b"content-length":
                if length >= 0:
                    return None
                length = int(value)
            elif name in (b"transfer-encoding", b"connection"):
                return None
            content += (name, b": ", value, b"\r\n")
        if length <= 0 or status in (204, 304):
            return None
        content.append(b"\r\n")
        self.chunked_encoding = False
        self.expected_content_length = length
        return b"".join(content)


MAX_HEAD_BYTES = 64 * 1024
# Above any socket read size, so a chunk that also carries the previous
# request's body tail never trips it.
MAX_RAW_HEAD_BYTES = 1024 * 1024


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """:class:`HttpToolsProtocol` that refuses oversized request heads; one keep-alive timer per idle spell.

    uvicorn arms a keep-alive timer each time an answer completes and cancels
    it when the next request's bytes arrive: a timer made and dropped per
    request, which almost never fires. Here arriving bytes only mark the
    connection busy, and a timer that fires while the connection is busy, or
    before its idle time is up, lapses or re-arms itself for the time left.
    A connection is still closed ``timeout_keep_alive`` seconds after its last
    answer if no request came since, as uvicorn does.
    """

    _in_head = False
    _head_bytes = 0
    _raw_bytes = 0
    _idle_since: float | None = None  # loop time of the last answer; None while a request is under way

    def _unset_keepalive_if_required(self) -> None:
        self._idle_since = None

    def on_response_complete(self) -> None:
        # uvicorn's, but for the keep-alive timer (see the class docstring).
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self._idle_since = None
        self.flow.resume_reading()
        if self.pipeline:
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
        else:
            self._idle_since = self.loop.time()
            if self.timeout_keep_alive_task is None:
                self.timeout_keep_alive_task = self.loop.call_later(self.timeout_keep_alive, self._keep_alive_due)

    def _keep_alive_due(self) -> None:
        self.timeout_keep_alive_task = None
        idle_since = self._idle_since
        if idle_since is None or self.transport.is_closing():
            return  # busy: its answer re-arms the timer
        left = idle_since + self.timeout_keep_alive - self.loop.time()
        if left > 0:
            self.timeout_keep_alive_task = self.loop.call_later(left, self._keep_alive_due)
        else:
            self.timeout_keep_alive_handler()

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if self.timeout_keep_alive_task is not None:
            self.timeout_keep_alive_task.cancel()
            self.timeout_keep_alive_task = None

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head, self._head_bytes, self._raw_bytes = True, 0, 0

    def _count(self, n: int) -> None:
        self._head_bytes += n
        if self._head_bytes > MAX_HEAD_BYTES:
            raise HeadTooLarge()

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        # uvicorn's on_header inlined after the count: it runs for every header of
        # every request, and one call less per header is measurable on the hot path.
        self._head_bytes += len(name) + len(value) + 4
        if self._head_bytes > MAX_HEAD_BYTES:
            raise HeadTooLarge()
        name = name.lower()
        if name == b"expect" and value.lower() == b"100-continue":
            self.expect_100_continue = True
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()
        # uvicorn builds its cycle inline and only schedules the task that runs it, so
        # the class can change here, before any of its methods is looked up. Same
        # attributes, one overridden method: nothing else of uvicorn is copied.
        if type(self.cycle) is RequestResponseCycle:
            self.cycle.__class__ = OneWriteCycle

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._in_head and not self.transport.is_closing():
            self._raw_bytes += len(data)
            if self._raw_bytes > MAX_RAW_HEAD_BYTES:
                self._in_head = False
                self.send_400_response("Request head too large.")
