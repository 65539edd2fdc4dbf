"""What the service's ASGI stack does around ``POST /auth/token``, for the protocol that skips it.

:class:`~silentauth.server.token_protocol.TokenProtocol` answers the token
route without the middleware; :class:`TokenRoute` does for it what the
middleware would (each named in that module's docstring) and renders the
answer's header lines, checked as uvicorn checks every header it writes.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from uvicorn.protocols.http.httptools_impl import HEADER_RE, HEADER_VALUE_RE

from silentauth.errors import render_json
from silentauth.server.cors import EXPOSE_HEADERS
from silentauth.server.headers import SECURITY_HEADERS
from silentauth.server.proxy import TrustedProxies
from silentauth.server.token_endpoint import RequestFields, TokenEndpoint

log = logging.getLogger("silentauth.server")

_SECURITY_LINES = b"".join(name + b": " + value + b"\r\n" for name, value in SECURITY_HEADERS)
_SERVER_ERROR = render_json(
    500, {"error": "server_error", "error_description": "An unexpected error occurred."}, {}
)


# Header pair -> its encoded line, checked as uvicorn checks every header it sends.
# The token endpoint's answers repeat a handful of pairs (content-length varies only
# with the token sizes), so each is built and checked once; bounded, since a value may vary.
_LINES: dict[tuple[bytes, bytes], bytes] = {}
_LINES_MAX = 512


def _lines(headers: Iterable[tuple[bytes, bytes]]) -> bytes:
    out = []
    for pair in headers:
        line = _LINES.get(pair)
        if line is None:
            name, value = pair
            if HEADER_RE.search(name) or HEADER_VALUE_RE.search(value):
                # What uvicorn raises on the ASGI path: the catch-all turns it into a 500,
                # never a header split over two lines.
                raise RuntimeError("Invalid HTTP header value.")
            line = name.lower() + b": " + value + b"\r\n"
            if len(_LINES) < _LINES_MAX:
                _LINES[pair] = line
        out.append(line)
    return b"".join(out)


class TokenRoute:
    """What the service's ASGI stack does around the token endpoint, as one call.

    ``middleware`` is the app's middleware list as :func:`create_app` left it:
    :func:`protocol_for` compares it with the app's list before it serves, so
    a middleware added later is never skipped.
    """

    def __init__(
        self,
        endpoint: TokenEndpoint,
        proxies: TrustedProxies,
        cors_origins: Iterable[str],
        middleware: tuple[object, ...] = (),
    ) -> None:
        self.endpoint = endpoint
        self.proxies = proxies
        self.origins = frozenset(cors_origins)
        self.middleware = middleware
        # Each listed origin's CORS lines, then the security headers: the order in
        # which the two middlewares append them (CORS is the inner one).
        self._tails = {
            origin: (
                b"vary: Origin\r\naccess-control-allow-origin: " + origin.encode("latin-1")
                + b"\r\naccess-control-allow-credentials: true\r\naccess-control-expose-headers: "
                + EXPOSE_HEADERS.encode("latin-1") + b"\r\n" + _SECURITY_LINES
            )
            for origin in self.origins
        }
        self._default_tail = (b"vary: Origin\r\n" if self.origins else b"") + _SECURITY_LINES

    def client(self, peer: tuple[str, int] | None, headers: list[tuple[bytes, bytes]]) -> tuple[str, int] | None:
        """The client's address: the peer, or who a trusted proxy says it forwards."""
        if peer is None or not self.proxies.networks:
            return peer
        found = self.proxies.resolve(peer, headers)
        return peer if found is None else (found[0], found[1])

    def tail(self, headers: list[tuple[bytes, bytes]]) -> bytes:
        """The header lines the middleware appends to every answer of this request."""
        if self.origins:
            for name, value in headers:
                if name == b"origin":  # the first one, as Starlette's Headers.get reads it
                    return self._tails.get(value.decode("latin-1"), self._default_tail)
        return self._default_tail

    async def respond(
        self, headers: list[tuple[bytes, bytes]], body: bytes, client: tuple[str, int] | None, path: str
    ) -> tuple[int, bytes, bytes]:
        """``(status, header lines, body)``: the endpoint's answer with the outer headers."""
        try:
            status, fields, content = await self.endpoint.answer(
                RequestFields.of(headers), body, client[0] if client else ""
            )
        except Exception as exc:
            # Logged by type only: exception text may quote a token or a password.
            log.error("unexpected %s on %s %s", type(exc).__name__, "POST", path)
            status, fields, content = _SERVER_ERROR
        try:
            lines = _lines(fields)
        except RuntimeError:
            # On the ASGI path uvicorn refuses such a head after the catch-all has seen
            # the answer start: the catch-all logs it, nothing is sent, the connection
            # closes. The same here.
            log.error("unexpected %s on %s %s", "RuntimeError", "POST", path)
            raise Unsendable() from None
        return status, lines + self.tail(headers), content


class Unsendable(Exception):
    """An answer with a header uvicorn would refuse to write (a line break in a value, say)."""
