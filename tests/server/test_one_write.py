"""The served protocol writes a fixed-length answer in one piece: head and body together.

uvicorn alone writes a head and then its body: two system calls per answer,
and a client woken twice. The transport here is uvicorn's real one (uvloop's
when installed), observed through a thin wrapper that counts ``write`` calls.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
import uvicorn

from silentauth.server.app import create_app
from silentauth.server.token_protocol import protocol_for
from silentauth.server.uvicorn_protocol import BoundedHttpToolsProtocol
from tests.conftest import FAST_PASSWORDS, free_port, make_settings

WRITES: list[bytes] = []


class _CountingTransport:
    """The server's own transport; every ``write`` is also recorded."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport

    def write(self, data: bytes) -> None:
        WRITES.append(bytes(data))
        self._transport.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class _Counting(asyncio.Protocol):
    """Mixed in front of the served protocol: its transport records each write."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(_CountingTransport(transport))  # type: ignore[arg-type]


@pytest.fixture
def port(tmp_path: object) -> Iterator[int]:
    app = create_app(make_settings(tmp_path), passwords=FAST_PASSWORDS)  # type: ignore[arg-type]
    port = free_port()
    # The protocol `silentauth serve` runs: token requests are answered in it, the rest through ASGI.
    counting = type("CountingProtocol", (_Counting, protocol_for(app)), {})
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, http=counting, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    asyncio.run(app.state.runtime.ensure_user("alice", "correct horse battery"))
    yield port
    server.should_exit = True
    thread.join(10)


def _exchange(conn: socket.socket, request: bytes) -> tuple[int, bytes]:
    """One request on a keep-alive connection; (status, body) of its whole answer."""
    conn.sendall(request)
    data = b""
    while b"\r\n\r\n" not in data:
        data += conn.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:"))
    while len(body) < length:
        body += conn.recv(65536)
    return int(head.split(b" ")[1]), body


def _post(form: dict[str, str]) -> bytes:
    body = urlencode(form).encode()
    return (
        b"POST /auth/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )


def test_each_answer_is_one_write_with_head_and_body(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        WRITES.clear()
        status, body = _exchange(conn, _post({"grant_type": "password", "username": "alice", "password": "correct horse battery"}))
        assert status == 200
        token = json.loads(body)["refresh_token"]
        for _ in range(3):
            status, body = _exchange(conn, _post({"grant_type": "refresh_token", "refresh_token": token}))
            assert status == 200
            token = json.loads(body)["refresh_token"]
        status, _ = _exchange(conn, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status == 200
        status, _ = _exchange(conn, _post({"grant_type": "refresh_token", "refresh_token": "v1.forged"}))
        assert status == 400
    # login, 3 refreshes, a health check and an error: six answers, six writes,
    # each one a whole answer (head, blank line, body).
    assert len(WRITES) == 6
    for write in WRITES:
        head, _, body = write.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 ") and body
        assert b"content-security-policy" in head  # the security headers still go out


def test_head_requests_and_closing_answers_keep_uvicorns_path(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"connection: close" in head.lower() and body


def test_pipelined_requests_are_all_answered(port: int) -> None:
    # The next request of a pipeline starts only when the previous answer is complete:
    # the one-write path must hand the connection on as uvicorn's does.
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" * 3)
        data = b""
        while data.count(b"HTTP/1.1 200") < 3:
            chunk = conn.recv(65536)
            assert chunk, data
            data += chunk
        assert _exchange(conn, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")[0] == 200


def test_an_answer_under_way_when_the_drain_begins_closes_its_connection() -> None:
    # SIGTERM makes uvicorn ask every connection to close after its answer. An answer
    # whose head is held for the one write must still close: otherwise the drain waits
    # for the idle connection's keep-alive timeout.
    async def slow(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await asyncio.sleep(0.5)
        await send({"type": "http.response.body", "body": b"ok"})

    port = free_port()
    config = uvicorn.Config(
        slow, host="127.0.0.1", port=port, http=BoundedHttpToolsProtocol, log_level="error", lifespan="off",
        timeout_keep_alive=30,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
            conn.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            time.sleep(0.2)
            server.should_exit = True  # what SIGTERM does
            data = b""
            while chunk := conn.recv(65536):  # EOF ends it; a timeout fails the test
                data += chunk
        assert data.startswith(b"HTTP/1.1 200") and data.endswith(b"\r\n\r\nok")
    finally:
        server.should_exit = True
        thread.join(10)
