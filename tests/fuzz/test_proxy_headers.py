"""Property tests on the forwarding headers: garbage never fails a request.

Arbitrary ``X-Forwarded-For``, ``X-Forwarded-Proto`` and ``Forwarded`` bytes
reach the real app from a trusted proxy (the middleware sits outside the
catch-all, so an exception there would be a bare 500): every answer is below
500, a login still records a parseable address, and from an untrusted peer
the headers never change the address at all.
"""

from __future__ import annotations

import asyncio
import ipaddress
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
from silentauth.server.proxy import TrustedProxies
from tests.conftest import FAST_PASSWORDS, make_settings

# Header values as h11/httptools deliver them: bytes without CR, LF or NUL.
header_bytes = st.binary(max_size=200).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"").replace(b"\0", b""))
# Mostly chain-shaped text, so the walk itself is exercised and not only the first hop.
hop = st.one_of(
    st.ip_addresses().map(str),
    # An address with a port, or with anything after the colon.
    st.tuples(st.ip_addresses(v=4), st.text(max_size=7)).map(lambda p: f"{p[0]}:{p[1]}"),
    st.tuples(st.ip_addresses(v=6), st.text(max_size=7)).map(lambda p: f'"[{p[0]}]:{p[1]}"'),
    st.sampled_from(["unknown", "_hidden", "127.0.0.1", "10.0.0.7", "[::1", "", " ", '"', "a=b", "for=", ";"]),
)
chain = st.lists(hop, max_size=6).map(", ".join).map(lambda s: s.encode("latin-1", "replace"))
forwarded = st.lists(
    st.tuples(hop, st.sampled_from(["http", "https", "HTTPS", "", "ftp", '"https"'])).map(
        lambda p: f"for={p[0]};proto={p[1]}"
    ),
    max_size=5,
).map(", ".join).map(lambda s: s.encode("latin-1", "replace"))
value = st.one_of(header_bytes, chain, forwarded)

FUZZ = settings(max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
PROXIES = ["127.0.0.1/32", "10.0.0.0/8", "::1/128"]


class App:
    """The real app behind a trusted proxy address, on its own event loop."""

    def __init__(self, mode: str) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="silentauth-proxy-"))
        self.loop = asyncio.new_event_loop()
        s = make_settings(self.tmp, trusted_proxies=tuple(PROXIES), proxy_headers=mode)
        self.app = create_app(s, clock=FakeClock(), passwords=FAST_PASSWORDS, background=False)
        self.rt = self.app.state.runtime
        self.run(self.rt.start())
        self.run(self.rt.ensure_user("alice", "secret"))
        transport = httpx.ASGITransport(app=self.app, raise_app_exceptions=False, client=("127.0.0.1", 40000))
        self.client = httpx.AsyncClient(transport=transport, base_url="http://testserver")

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def close(self) -> None:
        self.run(self.client.aclose())
        self.run(self.rt.store.close())
        self.loop.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


@pytest.fixture(scope="module", params=["x-forwarded", "forwarded"])
def app(request: pytest.FixtureRequest) -> Iterator[App]:
    a = App(str(request.param))
    yield a
    a.close()


@FUZZ
@given(xff=value, proto=value, fwd=value)
def test_any_forwarding_bytes_from_a_trusted_proxy_answer_below_500(app: App, xff: bytes, proto: bytes, fwd: bytes) -> None:
    headers = [(b"x-forwarded-for", xff), (b"x-forwarded-proto", proto), (b"forwarded", fwd)]
    r = app.run(
        app.client.post(
            "/auth/token",
            data={"grant_type": "password", "username": "alice", "password": "secret"},
            headers=headers,
        )
    )
    assert r.status_code == 200, r.text
    sessions = app.run(
        app.client.get("/auth/sessions", headers=[(b"authorization", f"Bearer {r.json()['access_token']}".encode()), *headers])
    )
    assert sessions.status_code == 200
    ip = next(s["ip"] for s in sessions.json() if s["current"])
    ipaddress.ip_address(ip)  # always an address, never the header's text
    r = app.run(app.client.post("/auth/login", json={"username": "alice", "password": "x"}, headers=[*headers, (b"origin", fwd)]))
    assert r.status_code < 500, r.text


@FUZZ
@given(xff=value, proto=value, fwd=value, peer=st.ip_addresses().map(str))
def test_rule_never_raises_and_ignores_untrusted_peers(xff: bytes, proto: bytes, fwd: bytes, peer: str) -> None:
    headers = [(b"x-forwarded-for", xff), (b"x-forwarded-proto", proto), (b"forwarded", fwd)]
    for mode in ("x-forwarded", "forwarded"):
        rule = TrustedProxies(PROXIES, mode)
        found = rule.resolve((peer, 1), headers)
        if not rule.trusts(ipaddress.ip_address(peer)) and not (
            isinstance(ipaddress.ip_address(peer), ipaddress.IPv6Address)
            and rule.trusts(ipaddress.ip_address(peer).ipv4_mapped)
        ):
            assert found is None
        elif found is not None:
            host, port, scheme = found
            ipaddress.ip_address(host)
            assert 0 <= port < 65536 and scheme in (None, "http", "https")
