"""Property tests on cookie and header handling, through the real app in-process.

Arbitrary bytes in ``Cookie``, ``X-CSRF-Token``, ``Authorization``, ``Origin``,
``Host``, ``Content-Type`` and ``Content-Length`` (as an ASGI server could pass
them on) reach the browser refresh, logout, token and API routes: each answer
is a JSON 4xx (never a 5xx), and no such request ever rotates or revokes the
real session it may name.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from silentauth.clock import FakeClock
from silentauth.server.app import create_app
from tests.conftest import FAST_PASSWORDS, make_settings

# Header values as h11/httptools deliver them: bytes without CR, LF or NUL.
header_bytes = st.binary(max_size=300).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"").replace(b"\0", b""))


class App:
    """The real app on its own event loop, with one live browser session."""

    def __init__(self) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="silentauth-hdr-"))
        self.loop = asyncio.new_event_loop()
        self.app = create_app(make_settings(self.tmp), clock=FakeClock(), passwords=FAST_PASSWORDS, background=False)
        self.rt = self.app.state.runtime
        self.run(self.rt.start())
        self.run(self.rt.ensure_user("alice", "secret"))
        transport = httpx.ASGITransport(app=self.app, raise_app_exceptions=False)
        self.client = httpx.AsyncClient(transport=transport, base_url="http://testserver")
        r = self.run(
            self.client.post(
                "/auth/login", json={"username": "alice", "password": "secret"}, headers={"Origin": "http://testserver"}
            )
        )
        self.cookie, self.csrf = r.cookies["silentauth-refresh"], r.json()["csrf_token"]
        self.sid = self.rt.service.session_of(self.cookie)
        self.client.cookies.clear()

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def close(self) -> None:
        self.run(self.client.aclose())
        self.run(self.rt.store.close())
        self.loop.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def app() -> Iterator[App]:
    a = App()
    yield a
    a.close()


def check(r: httpx.Response) -> None:
    assert r.status_code < 500, (r.request.url, r.status_code, r.text)
    if r.status_code >= 400:
        assert r.headers["content-type"].startswith("application/json")


FUZZ = settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
# Half the time the right Origin, so the cookie and proof checks behind it are reached too.
@given(
    cookie=header_bytes,
    proof=header_bytes,
    origin=st.one_of(st.just(b"http://testserver"), header_bytes),
    keep_real_cookie=st.booleans(),
)
def test_browser_refresh_and_logout_survive_any_cookie_and_csrf_bytes(
    app: App, cookie: bytes, proof: bytes, origin: bytes, keep_real_cookie: bool
) -> None:
    if keep_real_cookie:  # a real cookie with a hostile proof must still change nothing
        cookie = b"silentauth-refresh=" + app.cookie.encode() + b"; " + cookie
    for path in ("/auth/refresh", "/auth/logout"):
        headers = [(b"cookie", cookie), (b"x-csrf-token", proof), (b"origin", origin)]
        check(app.run(app.client.post(path, headers=headers)))
    row = app.run(app.rt.store.get_session(app.sid))
    assert row is not None and row.counter == 0 and row.revoked_at is None


@FUZZ
@given(value=header_bytes, scheme=st.sampled_from([b"Bearer ", b"bearer ", b"", b"Basic ", b"Bearer  "]))
def test_bearer_routes_survive_any_authorization_bytes(app: App, value: bytes, scheme: bytes) -> None:
    headers = [(b"authorization", scheme + value)]
    for method, path in (("GET", "/api/me"), ("GET", "/auth/sessions"), ("POST", "/auth/logout-all")):
        r = app.run(app.client.request(method, path, headers=headers))
        check(r)
        assert r.status_code in (400, 401, 403)


@FUZZ
@given(ctype=header_bytes, length=header_bytes, host=header_bytes, body=st.binary(max_size=200))
def test_token_endpoint_survives_any_content_type_length_and_host_bytes(
    app: App, ctype: bytes, length: bytes, host: bytes, body: bytes
) -> None:
    if not length.strip().isdigit() or not length.isascii():
        length = str(len(body)).encode()  # servers reject malformed lengths before the app
    host = host or b"x"
    # The matching Origin lets a login reach its content-type and body checks.
    headers = [(b"content-type", ctype), (b"content-length", length), (b"host", host), (b"origin", b"http://" + host)]
    for path in ("/auth/token", "/auth/revoke", "/auth/login"):
        check(app.run(app.client.post(path, content=body, headers=headers)))
    row = app.run(app.rt.store.get_session(app.sid))
    assert row is not None and row.counter == 0 and row.revoked_at is None
