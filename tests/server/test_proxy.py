"""Behind a reverse proxy: the client address and scheme from trusted peers only.

The header rules are checked on :class:`TrustedProxies` directly, then through
the real app in-process (``httpx.ASGITransport`` sets the peer address): the
session record, the per-address rate limit and the cookie routes' Origin
check all see what the trusted proxy reported, and nothing a client claims.
"""

from __future__ import annotations

import pytest

from silentauth.server.proxy import TrustedProxies, parse_address, parse_forwarded
from silentauth.settings import Rate, Settings
from tests.conftest import Service, ServiceFactory

NGINX = ("127.0.0.1", 41000)
XFF = TrustedProxies(["127.0.0.1/32", "10.0.0.0/8"])
FWD = TrustedProxies(["127.0.0.1/32", "10.0.0.0/8"], "forwarded")


def h(*pairs: tuple[str, str]) -> list[tuple[bytes, bytes]]:
    return [(k.lower().encode(), v.encode("latin-1")) for k, v in pairs]


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        # nginx's $proxy_add_x_forwarded_for appended the real peer: the client's
        # own claim (left of it) is never taken.
        ([("X-Forwarded-For", "6.6.6.6, 198.51.100.7")], ("198.51.100.7", 0, None)),
        # Trusted hops are walked over, right to left, to the first untrusted one.
        ([("X-Forwarded-For", "6.6.6.6, 198.51.100.7, 10.1.1.1")], ("198.51.100.7", 0, None)),
        # Several header lines are one list (RFC 9110 §5.3).
        ([("X-Forwarded-For", "6.6.6.6"), ("X-Forwarded-For", "198.51.100.7, 10.1.1.1")], ("198.51.100.7", 0, None)),
        ([("X-Forwarded-For", "198.51.100.7"), ("X-Forwarded-Proto", "HTTPS")], ("198.51.100.7", 0, "https")),
        # One proto per hop: the one of the hop taken.
        (
            [("X-Forwarded-For", "198.51.100.7, 10.1.1.1"), ("X-Forwarded-Proto", "https, http")],
            ("198.51.100.7", 0, "https"),
        ),
        # Unknown schemes change nothing.
        ([("X-Forwarded-For", "198.51.100.7"), ("X-Forwarded-Proto", "gopher")], ("198.51.100.7", 0, None)),
        ([("X-Forwarded-Proto", "https")], ("127.0.0.1", 41000, "https")),
        ([("X-Forwarded-For", "2001:DB8::7")], ("2001:db8::7", 0, None)),
        ([("X-Forwarded-For", "[2001:db8::7]:443")], ("2001:db8::7", 443, None)),
        ([("X-Forwarded-For", "198.51.100.7:5555")], ("198.51.100.7", 5555, None)),
        ([("X-Forwarded-For", "::ffff:198.51.100.7")], ("198.51.100.7", 0, None)),
        # Garbage ends the walk at the last address that was one.
        ([("X-Forwarded-For", "198.51.100.7, unknown, 10.1.1.1")], ("10.1.1.1", 0, None)),
        ([("X-Forwarded-For", "not an address")], None),
        ([("X-Forwarded-For", "198.51.100.7,")], None),
        ([], None),
        # The other family is not read.
        ([("Forwarded", "for=198.51.100.7;proto=https")], None),
    ],
)
def test_x_forwarded_for_from_a_trusted_peer(headers: list[tuple[str, str]], expected: object) -> None:
    assert XFF.resolve(NGINX, h(*headers)) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("for=198.51.100.7;proto=https", ("198.51.100.7", 0, "https")),
        # RFC 7239 §4: names are case-insensitive, IPv6 is quoted and bracketed.
        ('For="[2001:db8:cafe::17]:4711";Proto=HTTPS', ("2001:db8:cafe::17", 4711, "https")),
        ("for=6.6.6.6;proto=http, for=198.51.100.7;proto=https, for=10.0.0.2;proto=http", ("198.51.100.7", 0, "https")),
        # What the README's nginx line writes for an IPv6 peer (no brackets).
        ('for="2001:db8::7";proto=https', ("2001:db8::7", 0, "https")),
        # A quoted comma or semicolon does not split an element.
        ('for=198.51.100.7;by="a,b;c";proto=https', ("198.51.100.7", 0, "https")),
        # Obfuscated and unknown identifiers (§6.2, §6.3) are not addresses.
        ("for=_hidden, for=10.0.0.2", ("10.0.0.2", 0, None)),
        ("for=unknown", None),
        ("proto=https", None),
        ('for="unterminated', None),
    ],
)
def test_forwarded_from_a_trusted_peer(value: str, expected: object) -> None:
    assert FWD.resolve(NGINX, h(("Forwarded", value))) == expected


def test_headers_from_an_untrusted_peer_are_ignored() -> None:
    spoof = h(("X-Forwarded-For", "10.1.1.1"), ("X-Forwarded-Proto", "https"), ("Forwarded", "for=10.1.1.1"))
    assert XFF.resolve(("203.0.113.9", 1), spoof) is None
    assert FWD.resolve(("203.0.113.9", 1), spoof) is None
    assert TrustedProxies([]).resolve(NGINX, spoof) is None


def test_a_peer_in_ipv4_mapped_form_is_trusted_as_ipv4() -> None:
    assert XFF.resolve(("::ffff:127.0.0.1", 1), h(("X-Forwarded-For", "198.51.100.7"))) == ("198.51.100.7", 0, None)


def test_parsers_on_edge_cases() -> None:
    assert parse_address(" [::1] ") is not None and parse_address("[::1") is None and parse_address("") is None
    assert parse_forwarded('for="a\\"b";x=1, y') == [{"for": 'a"b', "x": "1"}, {}]


def test_settings_normalize_trusted_networks() -> None:
    s = Settings.load({"SILENTAUTH_TRUSTED_PROXIES": " 127.0.0.1, 10.9.8.7/8 ,::ffff:10.0.0.0/104,::1", "SILENTAUTH_PROXY_HEADERS": "Forwarded"})
    assert s.trusted_proxies == ("127.0.0.1/32", "10.0.0.0/8", "10.0.0.0/8", "::1/128")
    assert s.proxy_headers == "forwarded"


# --- through the app -------------------------------------------------------------


async def _proxied(service_factory: ServiceFactory, **overrides: object) -> Service:
    svc: Service = await service_factory(client_ip=NGINX[0], trusted_proxies=("127.0.0.1/32",), **overrides)
    await svc.add_user()
    return svc


async def _login_ip(svc: Service, xff: str | None) -> str:
    headers = {"X-Forwarded-For": xff} if xff is not None else {}
    r = await svc.client.post(
        "/auth/token",
        data={"grant_type": "password", "username": "alice", "password": "secret"},
        headers=headers,
    )
    assert r.status_code == 200, r.text
    sessions = await svc.client.get("/auth/sessions", headers={"Authorization": f"Bearer {r.json()['access_token']}"})
    return str(next(s["ip"] for s in sessions.json() if s["current"]))


@pytest.mark.anyio
async def test_session_records_the_forwarded_client(service_factory: ServiceFactory) -> None:
    svc = await _proxied(service_factory)
    assert await _login_ip(svc, "6.6.6.6, 198.51.100.7") == "198.51.100.7"
    assert await _login_ip(svc, None) == "127.0.0.1"


@pytest.mark.anyio
async def test_session_ignores_forwarding_from_an_untrusted_peer(service_factory: ServiceFactory) -> None:
    svc: Service = await service_factory(client_ip="203.0.113.9", trusted_proxies=("127.0.0.1/32",))
    await svc.add_user()
    assert await _login_ip(svc, "198.51.100.7") == "203.0.113.9"


@pytest.mark.anyio
async def test_rate_limit_counts_each_forwarded_client_apart(service_factory: ServiceFactory) -> None:
    svc = await _proxied(service_factory, rate_limit_login=Rate(3, 60))

    async def attempt(client: str, password: str) -> int:
        r = await svc.client.post(
            "/auth/token",
            data={"grant_type": "password", "username": "alice", "password": password},
            headers={"X-Forwarded-For": client},
        )
        return r.status_code

    assert [await attempt("198.51.100.7", "bad") for _ in range(4)] == [400, 400, 400, 429]
    # Another client behind the same proxy is not the attacker.
    assert await attempt("198.51.100.8", "secret") == 200
    # The attacker cannot claim another address: nginx appends the real one.
    assert await attempt("198.51.100.8, 198.51.100.7", "secret") == 429


@pytest.mark.anyio
async def test_https_origin_through_a_tls_terminating_proxy(service_factory: ServiceFactory) -> None:
    svc = await _proxied(service_factory)
    body = {"username": "alice", "password": "secret"}
    browser = {"Origin": "https://testserver", "X-Forwarded-Proto": "https", "X-Forwarded-For": "198.51.100.7"}
    r = await svc.client.post("/auth/login", json=body, headers=browser)
    assert r.status_code == 200, r.text
    # The same claim from a peer that is not a trusted proxy changes nothing.
    other: Service = await service_factory(settings=svc.runtime.settings, client_ip="203.0.113.9")
    r = await other.client.post("/auth/login", json=body, headers=browser)
    assert r.status_code == 403


@pytest.mark.anyio
async def test_issuer_origin_is_the_public_origin(service_factory: ServiceFactory) -> None:
    # A proxy that forwards no scheme: the ISSUER names the public origin.
    svc: Service = await service_factory(issuer="https://Auth.Example.com:443/")
    await svc.add_user()
    body = {"username": "alice", "password": "secret"}
    assert (await svc.client.post("/auth/login", json=body, headers={"Origin": "https://auth.example.com"})).status_code == 200
    assert (await svc.client.post("/auth/login", json=body, headers={"Origin": "http://auth.example.com"})).status_code == 403
    assert (await svc.client.post("/auth/login", json=body, headers={"Origin": "https://evil.example.com"})).status_code == 403


def test_the_parse_cache_stays_bounded_whatever_clients_send() -> None:
    from silentauth.server import proxy

    rule = TrustedProxies(["127.0.0.1/32"])
    for i in range(proxy._CACHE_SIZE + 10):
        assert rule.resolve(NGINX, h(("X-Forwarded-For", f"10.{i // 65536}.{i // 256 % 256}.{i % 256}"))) is not None
    assert len(rule._seen) <= proxy._CACHE_SIZE
