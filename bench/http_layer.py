"""The HTTP layer's own cost per request, in-process: the served protocol around a fixed answer.

``python -m bench.http_layer`` feeds keep-alive ``POST /auth/token`` requests
to the protocol ``silentauth serve`` uses (uvicorn + httptools, with
:mod:`silentauth.server.uvicorn_protocol`) on the running event loop, through
a transport that keeps what it is given, around an ASGI app that answers at
once with a token-sized JSON body and the token endpoint's headers. It prints
the CPU time per request and the transport writes per answer. No sockets, so
no kernel time: what the end-to-end bench adds on top is system calls.

Run it from two source trees (``PYTHONPATH=<tree>/src``) to compare a change
of the protocol layer without the noise of a network round trip. The second row
is :class:`~silentauth.server.token_protocol.TokenProtocol`, which answers the
route itself, around an endpoint that gives the same fixed answer.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

import uvicorn
from uvicorn.server import ServerState

from silentauth.errors import Rendered
from silentauth.server.headers import SECURITY_HEADERS
from silentauth.server.proxy import TrustedProxies
from silentauth.server.token_protocol import TokenProtocol
from silentauth.server.token_route import TokenRoute
from silentauth.server.uvicorn_protocol import BoundedHttpToolsProtocol

BODY = b'{"access_token":"' + b"a" * 700 + b'","token_type":"Bearer","expires_in":900}'
HEADERS = [
    (b"content-type", b"application/json"),
    (b"content-length", str(len(BODY)).encode()),
    (b"cache-control", b"no-store"),
    (b"pragma", b"no-cache"),
    *SECURITY_HEADERS,
]
FORM = b"grant_type=refresh_token&refresh_token=v1." + b"x" * 22 + b".7." + b"m" * 43
REQUEST = (
    b"POST /auth/token HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n"
    b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n%s" % (len(FORM), FORM)
)


async def answer(scope: Any, receive: Any, send: Any) -> None:
    """The token endpoint's shape without its work: read the body, answer."""
    await receive()
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})


class FixedEndpoint:
    """:meth:`TokenEndpoint.answer`'s shape without its work (the security headers come from the route)."""

    async def answer(self, fields: Any, body: bytes, ip: str) -> Rendered:
        return Rendered(200, HEADERS[:4], BODY)


class FixedTokenProtocol(TokenProtocol):
    route = TokenRoute(FixedEndpoint(), TrustedProxies(()), ())  # type: ignore[arg-type]


class Transport(asyncio.Transport):
    """Keeps every write; wakes the driver when a whole answer is in."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0
        self.received = 0
        self.done: asyncio.Event = asyncio.Event()
        self._closing = False

    def write(self, data: Any) -> None:
        self.writes += 1
        self.received += len(data)
        if self.received >= ANSWER_BYTES:
            self.received -= ANSWER_BYTES
            self.done.set()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8000)}.get(name, default)

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        self._closing = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


ANSWER_BYTES = 0  # set by measure(): the size of one whole answer


async def measure(protocol_class: type[Any] = BoundedHttpToolsProtocol, n: int = 20000) -> tuple[float, float]:
    """(CPU microseconds per request, transport writes per answer)."""
    global ANSWER_BYTES
    config = uvicorn.Config(
        answer, http=protocol_class, access_log=False, server_header=False, date_header=False,
        log_level="warning",
    )
    config.load()
    transport = Transport()
    protocol = protocol_class(config=config, server_state=ServerState(), app_state={})
    protocol.connection_made(transport)
    # The size of one answer: status line, headers, blank line, body.
    head = b"HTTP/1.1 200 OK\r\n" + b"".join(k + b": " + v + b"\r\n" for k, v in HEADERS) + b"\r\n"
    ANSWER_BYTES = len(head) + len(BODY)
    for _ in range(500):
        transport.done.clear()
        protocol.data_received(REQUEST)
        await transport.done.wait()
    transport.writes = 0
    t0 = time.process_time()
    for _ in range(n):
        transport.done.clear()
        protocol.data_received(REQUEST)
        await transport.done.wait()
    cpu = (time.process_time() - t0) / n * 1e6
    writes = transport.writes / n
    protocol.connection_lost(None)
    return cpu, writes


def main(argv: list[str]) -> int:
    import uvloop

    for label, cls in (("ASGI path", BoundedHttpToolsProtocol), ("token protocol", FixedTokenProtocol)):
        best = min(uvloop.run(measure(cls)) for _ in range(5))  # the least disturbed of five runs
        print(f"{label:15} {best[0]:6.1f} us CPU per request, {best[1]:.0f} transport write(s) per answer")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
