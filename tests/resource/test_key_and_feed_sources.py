"""JWKS parsing, caching and failure handling; the revocation feed follower.

The issuer is stood in for by a tiny Starlette app whose answers the test
sets, served to the real httpx client over ASGI.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from silentauth.clock import FakeClock
from silentauth.core.keys import SigningKey
from silentauth.resource import JWKSKeySource, RevocationFollower, UnknownKeyId
from silentauth.resource.jwks import parse_jwks
from tests.conftest import free_port


def _key(kid: str) -> SigningKey:
    private = ec.generate_private_key(ec.SECP256R1())
    return SigningKey(kid, private.public_key(), private, 0, 1e12)


@dataclass
class Issuer:
    """What the stand-in issuer answers, and how often it was asked."""

    jwks: Any = field(default_factory=lambda: {"keys": []})
    feed: Any = field(default_factory=lambda: {"revoked": [], "cursor": 0})
    status: int = 200
    hits: list[str] = field(default_factory=list)


@pytest.fixture
async def issuer() -> AsyncIterator[tuple[Issuer, httpx.AsyncClient]]:
    state = Issuer()

    async def jwks(request: Request) -> Response:
        state.hits.append("jwks")
        return JSONResponse(state.jwks, status_code=state.status)

    async def feed(request: Request) -> Response:
        state.hits.append(f"feed?since={request.query_params['since']}")
        return JSONResponse(state.feed, status_code=state.status)

    app = Starlette(routes=[Route("/jwks", jwks), Route("/feed", feed)])
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://issuer"
    ) as c:
        yield state, c


def test_parse_jwks_keeps_only_public_es256_signing_keys() -> None:
    good = _key("good").jwk()
    private = {**_key("private").jwk(), "d": "AAAA"}
    rsa = {"kty": "RSA", "kid": "rsa", "n": "AQAB", "e": "AQAB"}
    oct_key = {"kty": "oct", "kid": "oct", "k": "c2VjcmV0"}
    other_alg = {**_key("es384").jwk(), "alg": "ES384"}
    encryption = {**_key("enc").jwk(), "use": "enc"}
    broken = {**_key("broken").jwk(), "x": "!!"}
    no_kid = {k: v for k, v in _key("nokid").jwk().items() if k != "kid"}
    keys = parse_jwks(
        {
            "keys": [
                good,
                private,
                rsa,
                oct_key,
                other_alg,
                encryption,
                broken,
                no_kid,
                "x",
            ]
        }
    )
    assert set(keys) == {"good"}
    for not_a_set in ([], {"keys": {}}, "keys", None):
        with pytest.raises(ValueError):
            parse_jwks(not_a_set)


@pytest.mark.anyio
async def test_unknown_kid_refetch_is_rate_limited_and_shared(
    issuer: tuple[Issuer, httpx.AsyncClient],
) -> None:
    state, client = issuer
    clock = FakeClock(1000.0)
    source = JWKSKeySource(
        "http://issuer/jwks", client=client, refetch_interval=10, monotonic=clock
    )
    with pytest.raises(UnknownKeyId):
        source.get("k1", 0)
    state.jwks = {"keys": [_key("k1").jwk()]}
    assert await source.ensure_kid("k1") is True
    assert await source.ensure_kid("k1") is True  # held: no fetch
    assert await source.ensure_kid("k2") is False  # rate limited: no fetch
    assert state.hits == ["jwks"]
    clock.advance(10)
    assert await source.ensure_kid("k2") is False
    assert state.hits == ["jwks", "jwks"]
    assert (
        source.get("k" * 300, 0) is None
    )  # absurd kid: refused outright, never fetched
    assert await source.ensure_kid("k" * 300) is False
    assert source.fetches == 2


@pytest.mark.anyio
async def test_failed_or_oversize_fetch_keeps_the_keys_we_have(
    issuer: tuple[Issuer, httpx.AsyncClient],
) -> None:
    state, client = issuer
    source = JWKSKeySource("http://issuer/jwks", client=client)
    state.jwks = {"keys": [_key("k1").jwk()]}
    assert await source.refresh() is True
    state.status = 500
    assert await source.refresh() is False
    state.status = 200
    state.jwks = {"keys": [_key(f"k{i}").jwk() for i in range(2000)]}  # > 256 KiB
    assert await source.refresh() is False
    state.jwks = {"not": "a set"}
    assert await source.refresh() is False
    assert source.kids == {"k1"}
    unreachable = JWKSKeySource(f"http://127.0.0.1:{free_port()}/jwks", timeout=1)
    assert await unreachable.refresh() is False
    await unreachable.aclose()


@pytest.mark.anyio
async def test_a_key_withdrawn_from_the_set_stops_verifying(
    issuer: tuple[Issuer, httpx.AsyncClient],
) -> None:
    state, client = issuer
    source = JWKSKeySource("http://issuer/jwks", client=client)
    state.jwks = {"keys": [_key("old").jwk(), _key("new").jwk()]}
    await source.refresh()
    assert source.get("old", 0) is not None
    state.jwks = {"keys": [_key("new").jwk()]}
    await source.refresh()
    with pytest.raises(UnknownKeyId):
        source.get("old", 0)


@pytest.mark.anyio
async def test_revocation_follower_advances_its_cursor_and_rejects_malformed_feeds(
    issuer: tuple[Issuer, httpx.AsyncClient],
) -> None:
    state, client = issuer
    follower = RevocationFollower("http://issuer/feed", client=client, max_entries=3)
    state.feed = {"revoked": ["s1", "s2"], "cursor": 2}
    assert await follower.sync() == 2
    assert "s1" in follower and follower.cursor == 2
    for bad in (
        {"revoked": "s3", "cursor": 3},
        {"revoked": [1], "cursor": 3},
        {"revoked": [], "cursor": -1},
        {"revoked": [], "cursor": True},
        [],
    ):
        state.feed = bad
        assert await follower.sync_quietly() is False
    state.status = 503
    assert await follower.sync_quietly() is False
    state.status = 200
    state.feed = {"revoked": ["s3", "s4"], "cursor": 4}
    await follower.sync()
    assert state.hits[-1] == "feed?since=2"
    assert follower.cursor == 4
    assert (
        len(follower) == 3 and "s1" not in follower and "s4" in follower
    )  # oldest evicted
