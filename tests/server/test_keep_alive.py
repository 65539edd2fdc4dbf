"""An idle keep-alive connection closes ``timeout_keep_alive`` after its last answer, a busy one never.

The served protocol keeps one timer per idle spell instead of uvicorn's timer
per request (armed at each answer, cancelled by the next request): a timer
that fires early re-arms itself for the time left. Real sockets, the real app,
the protocol ``silentauth serve`` runs.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from silentauth.server.app import create_app
from silentauth.server.token_protocol import protocol_for
from tests.conftest import FAST_PASSWORDS, free_port, make_settings

TIMEOUT = 0.4
HEALTH = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
TOKEN = (
    b"POST /auth/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
    b"Content-Length: 16\r\n\r\ngrant_type=magic"
)


@pytest.fixture
def port(tmp_path: Path) -> Iterator[int]:
    app = create_app(make_settings(tmp_path), passwords=FAST_PASSWORDS)
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, http=protocol_for(app), log_level="error", timeout_keep_alive=TIMEOUT
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    yield port
    server.should_exit = True
    thread.join(10)


def _answer(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        assert chunk, "the connection was closed"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    while len(body) < length:
        body += conn.recv(65536)
    return head


def test_a_busy_connection_outlives_the_timeout_and_an_idle_one_closes_on_time(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        # Requests every 0.15 s for three timeouts: the timers that fire meanwhile
        # find a recent answer and re-arm, never closing a connection in use.
        start = last = time.monotonic()
        while last - start < 3 * TIMEOUT:
            time.sleep(0.15)
            for request in (HEALTH, TOKEN):  # the ASGI path and the protocol's own
                conn.sendall(request)
                assert _answer(conn).startswith(b"HTTP/1.1 ")
            last = time.monotonic()
        assert conn.recv(1) == b""  # blocks until the server closes the idle connection
        idle = time.monotonic() - last
    assert TIMEOUT - 0.05 <= idle < TIMEOUT + 1.0
