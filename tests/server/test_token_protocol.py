"""The token route answered inside the HTTP protocol gives the ASGI stack's answer, byte for byte.

One uvicorn server, one app, one store, two listening sockets: requests on
one socket take :class:`TokenProtocol`'s own path, on the other the ASGI path
(scope, middleware, :class:`TokenFastPath`). Real sockets, the real app; the
only difference is the route each socket's connections take. Answers are
compared whole, head and body, but for the ``date`` line (it may tick between
two requests).
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import uvicorn
from starlette.middleware.gzip import GZipMiddleware

from silentauth.errors import InvalidRequest
from silentauth.server.app import create_app
from silentauth.server.serve import _config
from silentauth.server.token_protocol import TokenProtocol, protocol_for
from silentauth.server.uvicorn_protocol import BoundedHttpToolsProtocol
from silentauth.settings import Rate
from tests.conftest import FAST_PASSWORDS, make_settings

FORM = "application/x-www-form-urlencoded"


class Served:
    """A running server: ``fast`` and ``asgi`` are the two ports, ``app`` the app behind both."""

    def __init__(self, app: Any, fast: int, asgi: int) -> None:
        self.app, self.fast, self.asgi = app, fast, asgi
        self.fast_cycles = 0  # requests the protocol answered itself
        self.server: uvicorn.Server | None = None

    def login(self, port: int | None = None) -> dict[str, Any]:
        status, _, body = exchange(port or self.fast, post({"grant_type": "password", "username": "alice", "password": "pw"}))
        assert status == 200, body
        return dict(json.loads(body))


def _listener() -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    return sock


@contextmanager
def serve(tmp_path: Path, root_path: str = "", limit_concurrency: int | None = None, **settings: Any) -> Iterator[Served]:
    app = create_app(make_settings(tmp_path, **settings), passwords=FAST_PASSWORDS)
    fast_sock, asgi_sock = _listener(), _listener()
    served = Served(app, fast_sock.getsockname()[1], asgi_sock.getsockname()[1])
    base = protocol_for(app)
    assert issubclass(base, TokenProtocol)

    class BothPaths(base):  # type: ignore[valid-type, misc]
        def _token_request(self) -> bool | None:
            if self.server and self.server[1] == served.asgi:
                return None
            keep_alive: bool | None = super()._token_request()
            served.fast_cycles += keep_alive is not None
            return keep_alive

    config = uvicorn.Config(
        app, http=BothPaths, log_level="error", server_header=False, root_path=root_path,
        limit_concurrency=limit_concurrency,
    )
    server = served.server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [fast_sock, asgi_sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    asyncio.run(app.state.runtime.ensure_user("alice", "pw"))
    try:
        yield served
    finally:
        server.should_exit = True
        thread.join(10)
        fast_sock.close()
        asgi_sock.close()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    with serve(tmp_path) as s:
        yield s


def post(form: dict[str, str] | bytes, *headers: str, content_type: str = FORM) -> bytes:
    body = form if isinstance(form, bytes) else urlencode(form).encode()
    extra = "".join(f"{h}\r\n" for h in headers).encode()
    return (
        b"POST /auth/token HTTP/1.1\r\nHost: x\r\nContent-Type: %s\r\nContent-Length: %d\r\n%s\r\n%s"
        % (content_type.encode(), len(body), extra, body)
    )


def read_answer(conn: socket.socket, data: bytes = b"") -> tuple[bytes, bytes]:
    """One whole answer from ``conn``: (answer, bytes read past it)."""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        assert chunk, data
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lengths = [int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")]
    length = lengths[0] if lengths else 0  # a 100 Continue has none
    while len(rest) < length:
        chunk = conn.recv(65536)
        assert chunk
        rest += chunk
    return head + b"\r\n\r\n" + rest[:length], rest[length:]


def exchange(port: int, request: bytes) -> tuple[int, bytes, bytes]:
    """(status, head without its date line, body) of one request on a new connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(request)
        answer, _ = read_answer(conn)
    return split(answer)


def split(answer: bytes) -> tuple[int, bytes, bytes]:
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = [line for line in head.split(b"\r\n") if not line.startswith(b"date: ")]
    assert len(lines) == head.count(b"\r\n")  # exactly one date line was there
    return int(lines[0].split(b" ")[1]), b"\r\n".join(lines), body


def both(served: Served, request: bytes) -> tuple[int, bytes, bytes]:
    """The same request on each path: the answers must be identical."""
    before = served.fast_cycles
    fast = exchange(served.fast, request)
    assert served.fast_cycles == before + 1  # the protocol's own path answered it
    asgi = exchange(served.asgi, request)
    assert fast == asgi
    return fast


def test_a_refresh_answer_has_the_same_head_on_both_paths(served: Served) -> None:
    a, b = served.login(), served.login(served.asgi)
    status, head, body = exchange(served.fast, post({"grant_type": "refresh_token", "refresh_token": a["refresh_token"]}))
    status_b, head_b, body_b = exchange(served.asgi, post({"grant_type": "refresh_token", "refresh_token": b["refresh_token"]}))
    assert status == status_b == 200
    assert head == head_b  # status line, every header and its order, content-length included
    assert b"content-security-policy: " in head and b"cache-control: no-store" in head
    fresh, fresh_b = json.loads(body), json.loads(body_b)
    assert fresh.keys() == fresh_b.keys() and fresh["refresh_token"] != a["refresh_token"]
    # The rotated token works, on either path: the rotation was committed before the answer.
    status, _, body = exchange(served.asgi, post({"grant_type": "refresh_token", "refresh_token": fresh["refresh_token"]}))
    assert status == 200
    assert served.app.state.runtime.metrics.refresh.labels("rotated")._value.get() == 3


@pytest.mark.parametrize(
    "request_bytes",
    [
        post({"grant_type": "refresh_token", "refresh_token": "v1.forged.1.xyz"}),
        post({"grant_type": "refresh_token"}),
        post({"grant_type": "magic"}),
        post({"grant_type": "password", "username": "alice", "password": "wrong"}),
        post(b"grant_type=refresh_token&grant_type=password"),
        post(b"\xff\xfe=1"),
        post(b""),
        post({"grant_type": "refresh_token", "refresh_token": "x"}, content_type="application/json"),
        post({"grant_type": "refresh_token", "refresh_token": "x"}, "Idempotency-Key: short"),
        post({"grant_type": "refresh_token", "refresh_token": "x"}, "Authorization: Basic !!!"),
        post({"grant_type": "refresh_token", "refresh_token": "x"}, "Authorization: Basic bm9ib2R5OnNlY3JldA=="),
        post({"grant_type": "refresh_token", "refresh_token": "x", "client_secret": "s"}),
    ],
    ids=[
        "forged", "missing-token", "grant-type", "bad-password", "repeated", "not-utf8", "empty",
        "json", "idempotency-key", "basic-malformed", "basic-unknown", "secret-without-id",
    ],
)
def test_refusals_are_the_same_bytes_on_both_paths(served: Served, request_bytes: bytes) -> None:
    status, _, _ = both(served, request_bytes)
    assert 400 <= status < 500


def test_cors_labels_are_the_same_on_both_paths(tmp_path: Path) -> None:
    with serve(tmp_path, cors_origins=("https://app.example",)) as served:
        forged = {"grant_type": "refresh_token", "refresh_token": "v1.forged.1.xyz"}
        _, head, _ = both(served, post(forged, "Origin: https://app.example"))
        assert b"access-control-allow-origin: https://app.example\r\n" in head
        assert b"access-control-allow-credentials: true" in head and b"vary: Origin" in head
        _, head, _ = both(served, post(forged, "Origin: https://evil.example"))
        assert b"vary: Origin" in head and b"access-control" not in head
        _, head, _ = both(served, post(forged))
        assert b"vary: Origin" in head
        # A successful answer is labelled too.
        token = served.login()["refresh_token"]
        status, head, _ = exchange(served.fast, post({"grant_type": "refresh_token", "refresh_token": token}, "Origin: https://app.example"))
        assert status == 200 and b"access-control-allow-origin: https://app.example\r\n" in head


def test_the_rate_limit_counts_the_address_a_trusted_proxy_forwards(tmp_path: Path) -> None:
    # Ten forged refreshes per address (the limit of 1/minute, x10 for forgeries): the
    # eleventh from the same forwarded client is refused, another client is not.
    with serve(tmp_path, rate_limit_refresh=Rate(1, 60), trusted_proxies=("127.0.0.1/32",)) as served:
        forged = {"grant_type": "refresh_token", "refresh_token": "v1.forged.1.xyz"}
        for _ in range(10):
            assert exchange(served.fast, post(forged, "X-Forwarded-For: 198.51.100.7"))[0] == 400
        status, head, _ = both(served, post(forged, "X-Forwarded-For: 198.51.100.7"))
        assert status == 429 and b"retry-after: " in head
        assert exchange(served.fast, post(forged, "X-Forwarded-For: 198.51.100.8"))[0] == 400


def test_the_access_log_line_is_uvicorns(tmp_path: Path) -> None:
    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    access = logging.getLogger("uvicorn.access")
    handler = Keep()
    # Mounted below /sa by a proxy that strips it (uvicorn's --root-path): the route
    # is still /auth/token, the log names the full path, as uvicorn's own line does.
    with serve(tmp_path, root_path="/sa", trusted_proxies=("127.0.0.1/32",)) as served:
        level = access.level
        access.addHandler(handler)  # before the connections: each protocol looks once
        access.setLevel(logging.INFO)
        try:
            forged = post({"grant_type": "refresh_token", "refresh_token": "v1.f.1.x"}, "X-Forwarded-For: 198.51.100.7")
            both(served, forged)
        finally:
            access.removeHandler(handler)
            access.setLevel(level)
    assert lines == ['198.51.100.7:0 - "POST /sa/auth/token HTTP/1.1" 400'] * 2


def test_an_unexpected_error_is_a_json_500_logged_by_type(served: Served, caplog: pytest.LogCaptureFixture) -> None:
    # A fault inside the endpoint (here: the client registry raising something no
    # handler expects) must not become uvicorn's text/plain 500 nor a traceback.
    clients = served.app.state.runtime.clients

    async def broken(*args: object, **kwargs: object) -> None:
        raise ZeroDivisionError("secret-looking text")

    original = clients.any_confidential
    clients.any_confidential = broken
    try:
        with caplog.at_level(logging.ERROR, logger="silentauth.server"):
            status, head, body = both(served, post({"grant_type": "refresh_token", "refresh_token": "v1.f.1.x"}))
    finally:
        clients.any_confidential = original
    assert status == 500 and json.loads(body)["error"] == "server_error"
    assert b"content-security-policy" in head
    messages = [r.getMessage() for r in caplog.records if r.name == "silentauth.server"]
    assert messages == ["unexpected ZeroDivisionError on POST /auth/token"] * 2


class _SplitHeader(InvalidRequest):
    """An error whose header value holds a line break: no endpoint makes one, a bug might."""

    def headers(self) -> dict[str, str]:
        return {**super().headers(), "X-Note": "a\r\nSet-Cookie: session=stolen"}


def test_a_header_with_a_line_break_is_never_sent(served: Served, caplog: pytest.LogCaptureFixture) -> None:
    # No response splitting on either path: uvicorn refuses the head, the catch-all logs
    # it by type, the connection closes without an answer.
    clients = served.app.state.runtime.clients

    async def broken(*args: object, **kwargs: object) -> None:
        raise _SplitHeader()

    clients.any_confidential = broken
    answers = []
    with caplog.at_level(logging.ERROR, logger="silentauth.server"):
        for port in (served.fast, served.asgi):
            with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
                conn.sendall(post({"grant_type": "refresh_token", "refresh_token": "v1.f.1.x"}))
                data = b""
                while chunk := conn.recv(65536):
                    data += chunk
            answers.append(data)
    assert answers == [b"", b""] and served.fast_cycles == 1
    messages = [r.getMessage() for r in caplog.records if r.name == "silentauth.server"]
    assert messages == ["unexpected RuntimeError on POST /auth/token"] * 2


def test_a_store_outage_is_the_same_503_on_both_paths(served: Served) -> None:
    token = served.login()["refresh_token"]
    asyncio.run(served.app.state.runtime.store.close())  # the database goes away under the service
    status, head, body = both(served, post({"grant_type": "refresh_token", "refresh_token": token}))
    assert status == 503 and b"retry-after: 2" in head and b"temporarily_unavailable" in body


def _keep_alive_run(port: int, requests: list[bytes], pieces: Callable[[bytes], list[bytes]]) -> list[bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        for piece in pieces(b"".join(requests)):
            conn.sendall(piece)
            time.sleep(0.002)
        answers, rest = [], b""
        for _ in requests:
            answer, rest = read_answer(conn, rest)
            answers.append(split(answer)[1] + b"\r\n\r\n" + split(answer)[2])
        return answers


def test_pipelined_and_split_requests_are_answered_in_order(served: Served) -> None:
    forged = post({"grant_type": "refresh_token", "refresh_token": "v1.forged.1.xyz"})
    health = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    requests = [forged, health, forged, post({"grant_type": "magic"}), health]
    for pieces in (
        lambda data: [data],  # all pipelined in one segment
        lambda data: [data[i : i + 23] for i in range(0, len(data), 23)],  # dribbled
    ):
        fast = _keep_alive_run(served.fast, requests, pieces)
        assert fast == _keep_alive_run(served.asgi, requests, pieces)
        assert [a.split(b" ")[1] for a in fast] == [b"400", b"200", b"400", b"400", b"200"]


def test_connection_close_is_honoured_and_said(served: Served) -> None:
    request = post({"grant_type": "magic"}, "Connection: close")
    answers = []
    for port in (served.fast, served.asgi):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
            conn.sendall(request)
            data = b""
            while chunk := conn.recv(65536):  # EOF: the server closed it
                data += chunk
        answers.append(split(data))
    assert answers[0] == answers[1] and b"connection: close" in answers[0][1]


def test_an_answer_under_way_when_the_drain_begins_is_sent_and_closes_its_connection(served: Served) -> None:
    # SIGTERM asks every connection to close after its answer: a refresh in flight is
    # answered (it may have rotated already), says so, and the connection ends.
    clients = served.app.state.runtime.clients

    async def slow(*args: object, **kwargs: object) -> bool:
        await asyncio.sleep(0.4)
        return False

    clients.any_confidential = slow
    with socket.create_connection(("127.0.0.1", served.fast), timeout=10) as conn:
        conn.sendall(post({"grant_type": "refresh_token", "refresh_token": "v1.forged.1.xyz"}))
        time.sleep(0.15)
        assert served.server is not None
        served.server.should_exit = True  # what SIGTERM does
        data = b""
        while chunk := conn.recv(65536):  # EOF ends it; a timeout fails the test
            data += chunk
    status, head, body = split(data)
    assert status == 400 and b"connection: close" in head and b"invalid_grant" in body
    assert served.fast_cycles == 1


def test_a_client_that_leaves_mid_body_costs_nothing(served: Served) -> None:
    with socket.create_connection(("127.0.0.1", served.fast), timeout=10) as conn:
        conn.sendall(post(b"grant_type=magic")[:-3])
        time.sleep(0.05)  # the head is in, the body never completes
    time.sleep(0.05)
    assert served.fast_cycles == 1
    assert both(served, post({"grant_type": "magic"}))[0] == 400


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"POST /auth/token?x=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
        b"POST /auth/token HTTP/1.0\r\nContent-Length: 0\r\n\r\n",
        b"POST /auth/token HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"POST /auth/token HTTP/1.1\r\nHost: x\r\nContent-Length: 70000\r\n\r\n",
        b"POST /auth/token HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nExpect: 100-continue\r\n\r\n",
        b"GET /auth/token HTTP/1.1\r\nHost: x\r\n\r\n",
    ],
    ids=["query", "http-1.0", "chunked", "too-long", "expect", "get"],
)
def test_unusual_requests_take_the_asgi_path(served: Served, request_bytes: bytes) -> None:
    before = served.fast_cycles
    with socket.create_connection(("127.0.0.1", served.fast), timeout=10) as conn:
        conn.sendall(request_bytes)
        answer, rest = read_answer(conn)
        if answer == b"HTTP/1.1 100 Continue\r\n\r\n":
            answer, _ = read_answer(conn, rest)
    assert served.fast_cycles == before
    assert answer.split(b" ")[1] in (b"400", b"405", b"413", b"415")


def test_a_server_at_its_concurrency_limit_answers_uvicorns_503(tmp_path: Path) -> None:
    # One connection is the limit: the request on it already finds the server full.
    with serve(tmp_path, limit_concurrency=1) as served:
        status, head, body = exchange(served.fast, post({"grant_type": "magic"}))
        assert served.fast_cycles == 0
    assert status == 503 and body == b"Service Unavailable"


def test_only_the_services_own_app_gets_the_token_protocol(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    app = create_app(settings, passwords=FAST_PASSWORDS)
    assert issubclass(protocol_for(app), TokenProtocol)
    assert issubclass(_config(app, settings).http, TokenProtocol)  # type: ignore[arg-type]  # what serve runs
    app.add_middleware(GZipMiddleware)  # any middleware added after create_app: never skipped
    assert protocol_for(app) is BoundedHttpToolsProtocol
    assert protocol_for(object()) is BoundedHttpToolsProtocol
