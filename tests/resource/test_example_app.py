"""The example FastAPI app (examples/fastapi_app.py) against a real token service.

The token service runs under uvicorn on loopback; the example app fetches its
keys from the service's JWKS over HTTP, exactly as a third-party API would.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from examples.fastapi_app import create_app
from silentauth.clock import FakeClock
from silentauth.core.keys import SigningKey
from silentauth.core.tokens import decode_unverified
from tests.conftest import LiveServer, run_live
from tests.resource.conftest import (
    bearer,
    example_app,
    on_server,
    password_grant,
    sign,
    start_live,
)

ISSUER = "https://issuer.test"
Factory = Callable[..., LiveServer]


def jwks_url(live: LiveServer) -> str:
    return f"{live.url}/.well-known/jwks.json"


@pytest.mark.anyio
async def test_example_app_accepts_tokens_verified_from_the_jwks(
    live_server_factory: Factory,
) -> None:
    live = await start_live(live_server_factory, issuer=ISSUER)
    async with (
        httpx.AsyncClient() as http,
        example_app(ISSUER, jwks_url=jwks_url(live)) as ex,
    ):
        grant = await password_grant(http, live.url)
        r = await ex.client.get("/whoami", headers=bearer(grant["access_token"]))
        assert r.status_code == 200, r.text
        assert r.json()["username"] == "alice"
        assert (
            ex.auth.jwks.fetches == 1
        )  # the lifespan's prefetch; no fetch per request
        for _ in range(20):
            assert (
                await ex.client.get("/whoami", headers=bearer(grant["access_token"]))
            ).status_code == 200
        assert ex.auth.jwks.fetches == 1


@pytest.mark.anyio
async def test_example_app_without_token_answers_401_bearer_challenge(
    live_server_factory: Factory,
) -> None:
    live = await start_live(live_server_factory, issuer=ISSUER)
    async with example_app(ISSUER, jwks_url=jwks_url(live)) as ex:
        r = await ex.client.get("/whoami")
        assert r.status_code == 401
        assert r.headers["www-authenticate"] == "Bearer"


@pytest.mark.anyio
async def test_transfer_needs_payments_scope_else_403_insufficient_scope(
    live_server_factory: Factory,
) -> None:
    live = await start_live(
        live_server_factory, issuer=ISSUER, scope="profile api payments"
    )
    async with (
        httpx.AsyncClient() as http,
        example_app(ISSUER, jwks_url=jwks_url(live)) as ex,
    ):
        browsing = await password_grant(http, live.url, scope="api")
        r = await ex.client.post("/transfer", headers=bearer(browsing["access_token"]))
        assert r.status_code == 403
        assert (
            r.headers["www-authenticate"]
            == 'Bearer error="insufficient_scope", scope="payments"'
        )
        assert r.json()["error"] == "insufficient_scope"
        paying = await password_grant(http, live.url, scope="api payments")
        r = await ex.client.post("/transfer", headers=bearer(paying["access_token"]))
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "accepted"


@pytest.mark.anyio
async def test_transfer_asks_for_a_step_up_when_the_login_is_older_than_five_minutes(
    live_server_factory: Factory,
) -> None:
    # The user logged in 400 s ago (the token service's clock then ran 400 s behind);
    # a refresh 200 s ago gave a payments token (300 s lifetime) that is still valid.
    clock = FakeClock(time.time() - 400)
    live = await start_live(
        live_server_factory, issuer=ISSUER, clock=clock, scope="profile api payments"
    )
    async with (
        httpx.AsyncClient() as http,
        example_app(ISSUER, jwks_url=jwks_url(live)) as ex,
    ):
        login = await password_grant(http, live.url, scope="api payments")
        clock.advance(200)
        r = await http.post(
            f"{live.url}/auth/token",
            data={"grant_type": "refresh_token", "refresh_token": login["refresh_token"]},
        )
        old = r.json()
        r = await ex.client.post("/transfer", headers=bearer(old["access_token"]))
        assert r.status_code == 401
        challenge = r.headers["www-authenticate"]
        assert challenge.startswith('Bearer error="insufficient_user_authentication"'), challenge
        assert challenge.endswith("max_age=300")
        r = await ex.client.get("/whoami", headers=bearer(old["access_token"]))
        assert r.status_code == 200  # only the transfer asks for a recent login
        clock.advance(200)
        fresh = await password_grant(http, live.url, scope="api payments")
        r = await ex.client.post("/transfer", headers=bearer(fresh["access_token"]))
        assert r.status_code == 200, r.text


@pytest.mark.anyio
async def test_payments_scope_gets_the_shorter_risk_based_lifetime(
    live_server_factory: Factory,
) -> None:
    live = await start_live(
        live_server_factory, issuer=ISSUER, scope="profile api payments", access_ttl=900
    )
    async with httpx.AsyncClient() as http:
        browsing = await password_grant(http, live.url, scope="api")
        paying = await password_grant(http, live.url, scope="api payments")
    assert browsing["expires_in"] == 900
    assert paying["expires_in"] == 300  # token_policy default: payments=300
    _, claims = decode_unverified(paying["access_token"])
    assert claims["exp"] - claims["iat"] == 300


@pytest.mark.anyio
async def test_key_rotation_never_refuses_a_token_old_tokens_keep_working(
    live_server_factory: Factory,
) -> None:
    clock = FakeClock(time.time())
    live = await start_live(live_server_factory, clock=clock, issuer=ISSUER)
    options: dict[str, Any] = {
        "jwks_url": jwks_url(live),
        "clock": clock,
        "monotonic": clock,
    }
    async with (
        httpx.AsyncClient() as http,
        example_app(ISSUER, refetch_interval=30, **options) as ex,
    ):
        old_seen = (await password_grant(http, live.url))["access_token"]
        old_unseen = (await password_grant(http, live.url))["access_token"]
        assert (
            await ex.client.get("/whoami", headers=bearer(old_seen))
        ).status_code == 200
        assert ex.auth.jwks.fetches == 1

        await on_server(live, live.runtime.keys.rotate(clock()))
        await on_server(live, live.runtime.reload_keys())
        # Published, not signing yet: the old key signs on.
        assert decode_unverified((await password_grant(http, live.url))["access_token"])[0]["kid"] == (
            decode_unverified(old_seen)[0]["kid"]
        )
        clock.advance(live.runtime.keys.prepublish)
        await on_server(live, live.runtime.reload_keys())
        new = (await password_grant(http, live.url))["access_token"]
        assert decode_unverified(new)[0]["kid"] != decode_unverified(old_seen)[0]["kid"]

        # The first token of the new key is accepted at first sight: the key
        # was published a pre-publication period (60 s) ago, longer than the
        # verifier's refetch interval (30 s), so its one refetch finds it.
        answers = await asyncio.gather(
            *(ex.client.get("/whoami", headers=bearer(new)) for _ in range(30))
        )
        assert [r.status_code for r in answers] == [200] * 30
        assert (
            ex.auth.jwks.fetches == 2
        )  # thirty requests with the new kid, one refetch
        for token in (old_seen, old_unseen):  # old key still published, still verifies
            assert (
                await ex.client.get("/whoami", headers=bearer(token))
            ).status_code == 200
        assert ex.auth.jwks.fetches == 2


@pytest.mark.anyio
async def test_forged_kids_cause_at_most_one_refetch_per_interval(
    live_server_factory: Factory,
) -> None:
    clock = FakeClock(time.time())
    live = await start_live(live_server_factory, clock=clock, issuer=ISSUER)
    options: dict[str, Any] = {
        "jwks_url": jwks_url(live),
        "clock": clock,
        "monotonic": clock,
    }
    attacker = ec.generate_private_key(ec.SECP256R1())
    async with (
        httpx.AsyncClient() as http,
        example_app(ISSUER, refetch_interval=10, **options) as ex,
    ):
        _, claims = decode_unverified(
            (await password_grant(http, live.url))["access_token"]
        )
        for round_ in range(3):
            clock.advance(11)
            forged = []
            for _ in range(40):
                key = SigningKey(
                    secrets.token_urlsafe(8), attacker.public_key(), attacker, 0, 1e12
                )
                forged.append(
                    sign(key, {"alg": "ES256", "kid": key.kid, "typ": "at+jwt"}, claims)
                )
            answers = await asyncio.gather(
                *(ex.client.get("/whoami", headers=bearer(t)) for t in forged)
            )
            assert {r.status_code for r in answers} == {401}
            assert ex.auth.jwks.fetches == 1 + (round_ + 1)


@pytest.mark.anyio
async def test_without_lifespan_first_requests_fetch_the_jwks_once(
    live_server_factory: Factory,
) -> None:
    live = await start_live(live_server_factory, issuer=ISSUER)
    async with (
        httpx.AsyncClient() as http,
        example_app(ISSUER, lifespan=False, jwks_url=jwks_url(live)) as ex,
    ):
        token = (await password_grant(http, live.url))["access_token"]
        assert ex.auth.jwks.fetches == 0
        answers = await asyncio.gather(
            *(ex.client.get("/whoami", headers=bearer(token)) for _ in range(50))
        )
        assert [r.status_code for r in answers] == [200] * 50
        assert ex.auth.jwks.fetches == 1


def test_example_app_served_by_uvicorn_end_to_end(live_server_factory: Factory) -> None:
    live = live_server_factory(issuer=ISSUER)
    served = run_live(create_app(ISSUER, jwks_url=jwks_url(live)))
    example = next(served)
    try:
        token = httpx.post(
            f"{live.url}/auth/token",
            data={"grant_type": "password", "username": "alice", "password": "secret"},
        ).json()["access_token"]
        with httpx.Client(base_url=example.url) as client:
            assert (
                client.get("/whoami", headers=bearer(token)).json()["username"]
                == "alice"
            )
            assert client.get("/whoami", headers=bearer(token + "x")).status_code == 401
    finally:
        for _ in served:
            pass
