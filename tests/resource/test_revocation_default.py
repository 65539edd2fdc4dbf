"""Revocation reaches a third-party API by default (``from_issuer`` follows the feed).

The token service runs under uvicorn on loopback; ``examples/fastapi_app.py`` is
wired exactly as the README shows, with no revocation option at all. A session
ended by logout, or killed by refresh-token reuse detection, must stop working
there within 2 s — not at the access token's expiry.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import anyio
import httpx
import pytest

from tests.conftest import LiveServer
from tests.resource.conftest import (
    Example,
    bearer,
    example_app,
    password_grant,
    start_live,
)

ISSUER = "https://issuer.test"
Factory = Callable[..., LiveServer]


async def refused_within(ex: Example, token: str, limit: float) -> float:
    """Seconds until the example app answers 401 for ``token``; fails past ``limit``."""
    started = time.monotonic()
    while (r := await ex.client.get("/whoami", headers=bearer(token))).status_code == 200:
        assert time.monotonic() - started < limit, f"revoked token still accepted after {limit} s"
        await anyio.sleep(0.05)
    assert r.status_code == 401
    assert "revoked" in r.json()["error_description"]
    return time.monotonic() - started


@pytest.mark.anyio
@pytest.mark.parametrize("lifespan", [True, False], ids=["lifespan", "no-lifespan"])
async def test_logged_out_session_fails_at_third_party_api_within_two_seconds(
    live_server_factory: Factory, lifespan: bool
) -> None:
    live = await start_live(live_server_factory, issuer=ISSUER, access_ttl=900)
    async with (
        httpx.AsyncClient(base_url=live.url) as http,
        example_app(ISSUER, lifespan=lifespan, jwks_url=f"{live.url}/.well-known/jwks.json") as ex,
    ):
        token = (await password_grant(http, live.url))["access_token"]
        other = (await password_grant(http, live.url))["access_token"]
        assert (await ex.client.get("/whoami", headers=bearer(token))).status_code == 200
        assert (await http.post("/auth/logout", headers=bearer(token))).status_code == 204
        await refused_within(ex, token, 2.0)
        # Only that session: another login of the same user still passes.
        assert (await ex.client.get("/whoami", headers=bearer(other))).status_code == 200


@pytest.mark.anyio
async def test_session_killed_by_reuse_detection_fails_at_third_party_api_within_two_seconds(
    live_server_factory: Factory,
) -> None:
    live = await start_live(live_server_factory, issuer=ISSUER, access_ttl=900, reuse_grace=0)
    async with (
        httpx.AsyncClient(base_url=live.url) as http,
        example_app(ISSUER, jwks_url=f"{live.url}/.well-known/jwks.json") as ex,
    ):
        grant = await password_grant(http, live.url)
        rotated = await http.post(
            "/auth/token", data={"grant_type": "refresh_token", "refresh_token": grant["refresh_token"]}
        )
        assert rotated.status_code == 200, rotated.text
        fresh = rotated.json()["access_token"]
        assert (await ex.client.get("/whoami", headers=bearer(fresh))).status_code == 200
        # The spent refresh token comes back: theft, the whole session dies.
        replay = await http.post(
            "/auth/token", data={"grant_type": "refresh_token", "refresh_token": grant["refresh_token"]}
        )
        assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
        await refused_within(ex, fresh, 2.0)
        await refused_within(ex, grant["access_token"], 0.1)


@pytest.mark.anyio
async def test_opting_out_of_the_feed_is_explicit(live_server_factory: Factory) -> None:
    live = await start_live(live_server_factory, issuer=ISSUER, access_ttl=900)
    async with (
        httpx.AsyncClient(base_url=live.url) as http,
        example_app(
            ISSUER, jwks_url=f"{live.url}/.well-known/jwks.json", revocation_url=False
        ) as ex,
    ):
        assert ex.auth.revocations is None
        token = (await password_grant(http, live.url))["access_token"]
        assert (await http.post("/auth/logout", headers=bearer(token))).status_code == 204
        await anyio.sleep(1.5)
        assert (await ex.client.get("/whoami", headers=bearer(token))).status_code == 200
