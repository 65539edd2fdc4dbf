"""Security headers and slash handling, on raw HTTP/1.1 to the real server.

Raw sockets rather than an HTTP client: the request line and ``Host`` header go out
exactly as an attacker (or a confused proxy) would send them.
"""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from silentauth.server.headers import CONTENT_SECURITY_POLICY, SecurityHeadersMiddleware
from tests.conftest import LiveServer


def raw(live: LiveServer, request: bytes) -> tuple[int, dict[str, str]]:
    """Send one raw request; (status, lower-cased headers) of the answer."""
    url = urlsplit(live.url)
    with socket.create_connection((url.hostname, url.port), timeout=5) as s:
        s.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    headers = {}
    for line in head[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(head[0].split()[1]), headers


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /api/me/ HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n",
        b"GET /auth/sessions/ HTTP/1.1\r\nHost: evil.example:443\r\nConnection: close\r\n\r\n",
        b"POST /auth/token/ HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 19\r\n\r\n"
        b"grant_type=password",
        b"POST /auth/login/ HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n"
        b"Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
    ],
)
def test_trailing_slash_answers_404_and_never_a_location(live_server: LiveServer, request_bytes: bytes) -> None:
    status, headers = raw(live_server, request_bytes)
    assert status == 404 and "location" not in headers
    assert headers["x-frame-options"] == "DENY"


def test_exact_paths_still_answer(live_server: LiveServer) -> None:
    status, headers = raw(live_server, b"GET / HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n")
    assert status == 200
    assert headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert headers["x-content-type-options"] == "nosniff" and headers["referrer-policy"] == "same-origin"


@pytest.mark.anyio
async def test_a_route_that_sets_its_own_header_keeps_it() -> None:
    async def framed(request: Request) -> Response:
        return PlainTextResponse("ok", headers={"X-Frame-Options": "SAMEORIGIN"})

    app = SecurityHeadersMiddleware(Starlette(routes=[Route("/", framed)]))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        r = await client.get("/")
    assert r.headers.get_list("x-frame-options") == ["SAMEORIGIN"]
    assert r.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
