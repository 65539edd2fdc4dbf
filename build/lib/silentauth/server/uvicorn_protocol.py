"""A uvicorn HTTP protocol (httptools) with a bound on the request head.

``silentauth serve`` runs uvicorn with :class:`BoundedHttpToolsProtocol`.

httptools buffers a request's headers without limit, so one connection could
make the server hold a 30 MB header. Here the request line and headers may
total :data:`MAX_HEAD_BYTES` (counted as the parser reports them), and a head
still incomplete after :data:`MAX_RAW_HEAD_BYTES` received bytes (one endless
header) is cut off too. Either way: 400 and the connection is closed.
"""

from __future__ import annotations

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from silentauth.errors import HeadTooLarge

MAX_HEAD_BYTES = 64 * 1024
# Above any socket read size, so a chunk that also carries the previous
# request's body tail never trips it.
MAX_RAW_HEAD_BYTES = 1024 * 1024


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """:class:`HttpToolsProtocol` that refuses oversized request heads."""

    _in_head = False
    _head_bytes = 0
    _raw_bytes = 0

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
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._in_head and not self.transport.is_closing():
            self._raw_bytes += len(data)
            if self._raw_bytes > MAX_RAW_HEAD_BYTES:
                self._in_head = False
                self.send_400_response("Request head too large.")
