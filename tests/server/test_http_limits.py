"""The served protocol bounds request heads (a DoS by one endless header)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn

from silentauth.server.app import create_app
from silentauth.server.uvicorn_protocol import BoundedHttpToolsProtocol
from tests.conftest import FAST_PASSWORDS, free_port, make_settings


@pytest.fixture
def bounded_url(tmp_path: object) -> Iterator[str]:
    app = create_app(make_settings(tmp_path), passwords=FAST_PASSWORDS)  # type: ignore[arg-type]
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, http=BoundedHttpToolsProtocol, log_level="error")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def _raw(url: str, payload: bytes) -> int | None:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        try:
            s.sendall(payload)
            return int(s.recv(100).split(b" ", 2)[1])
        except (BrokenPipeError, ConnectionResetError):
            return None


@pytest.mark.parametrize(
    "head",
    [
        b"X-Big: " + b"a" * 4_000_000 + b"\r\n",  # one endless header
        b"".join(b"X-H%d: %s\r\n" % (i, b"b" * 100) for i in range(1000)),  # many headers
    ],
    ids=["one-endless-header", "many-headers"],
)
def test_oversized_request_head_is_refused(bounded_url: str, head: bytes) -> None:
    status = _raw(bounded_url, b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + head + b"\r\n")
    assert status in (400, None)
    assert httpx.get(f"{bounded_url}/healthz").status_code == 200


def test_large_bodies_and_keepalive_still_work(bounded_url: str) -> None:
    with httpx.Client(base_url=bounded_url) as client:
        token = client.post(
            "/auth/token", data={"grant_type": "password", "username": "x", "password": "y"}
        )
        assert token.status_code == 400  # no such user, but parsed fine
        big = {"blob": "z" * 900_000}
        r = client.post("/api/echo", json=big, headers={"Authorization": "Bearer a.b.c", "X-Pad": "p" * 8000})
        assert r.status_code == 401  # the body was read and the head accepted
        for _ in range(3):
            assert client.get("/healthz").status_code == 200
