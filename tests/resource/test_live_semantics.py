"""The kit inside the real token service (uvicorn, loopback): revocation timing,
server-pushed renewal under concurrency, step-up; and the revocation feed a
third-party app follows.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import anyio
import httpx
import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from silentauth.clock import FakeClock
from silentauth.core.tokens import decode_unverified
from silentauth.server.app import create_app
from tests.conftest import (
    FAST_PASSWORDS,
    LiveServer,
    make_settings,
    run_live,
    seed_users,
)
from tests.resource.conftest import bearer, example_app, password_grant, start_live

Factory = Callable[..., LiveServer]


@pytest.mark.anyio
async def test_logout_makes_the_access_token_fail_within_one_second(
    live_server_factory: Factory,
) -> None:
    live = await start_live(live_server_factory)
    async with httpx.AsyncClient(base_url=live.url) as http:
        token = (await password_grant(http, live.url))["access_token"]
        assert (await http.get("/api/me", headers=bearer(token))).status_code == 200
        assert (
            await http.post("/auth/logout", headers=bearer(token))
        ).status_code == 204
        revoked_at = time.monotonic()
        while (
            r := await http.get("/api/me", headers=bearer(token))
        ).status_code == 200:
            assert time.monotonic() - revoked_at < 1.0, (
                "still accepted 1 s after logout"
            )
            await anyio.sleep(0.02)
        assert r.status_code == 401
        assert 'error="invalid_token"' in r.headers["www-authenticate"]
        assert time.monotonic() - revoked_at < 1.0


@pytest.mark.anyio
async def test_concurrent_requests_near_expiry_get_the_same_new_access_token(
    live_server_factory: Factory,
) -> None:
    live = await start_live(live_server_factory, access_ttl=900, renew_within=1000)
    async with httpx.AsyncClient(
        base_url=live.url, limits=httpx.Limits(max_connections=50)
    ) as http:
        token = (await password_grant(http, live.url))["access_token"]
        before = await anyio.to_thread.run_sync(live.metric, "silentauth_renewal_total")
        answers = await asyncio.gather(
            *(http.get("/api/me", headers=bearer(token)) for _ in range(50))
        )
        after = await anyio.to_thread.run_sync(live.metric, "silentauth_renewal_total")
    assert [r.status_code for r in answers] == [200] * 50
    renewed = {r.headers.get("new-access-token") for r in answers}
    assert len(renewed) == 1 and None not in renewed
    (new,) = renewed
    assert new != token
    assert decode_unverified(new)[1]["sid"] == decode_unverified(token)[1]["sid"]
    assert all(
        "New-Access-Token" in r.headers["access-control-expose-headers"]
        for r in answers
    )
    assert after - before == 1


@pytest.mark.anyio
async def test_no_renewal_for_a_revoked_session(live_server_factory: Factory) -> None:
    live = await start_live(live_server_factory, access_ttl=900, renew_within=1000)
    async with httpx.AsyncClient(base_url=live.url) as http:
        token = (await password_grant(http, live.url))["access_token"]
        assert (
            await http.post("/auth/logout", headers=bearer(token))
        ).status_code == 204
        before = await anyio.to_thread.run_sync(live.metric, "silentauth_renewal_total")
        answers = await asyncio.gather(
            *(http.get("/api/me", headers=bearer(token)) for _ in range(10))
        )
        after = await anyio.to_thread.run_sync(live.metric, "silentauth_renewal_total")
    assert [r.status_code for r in answers] == [401] * 10
    assert all("new-access-token" not in r.headers for r in answers)
    assert after == before


@pytest.mark.anyio
async def test_renewal_never_extends_past_the_session_max_age(
    live_server_factory: Factory,
) -> None:
    clock = FakeClock(time.time())
    live = await start_live(
        live_server_factory,
        clock=clock,
        access_ttl=900,
        renew_within=1000,
        session_max_age=1000,
    )
    async with httpx.AsyncClient(base_url=live.url) as http:
        token = (await password_grant(http, live.url))["access_token"]
        session_end = decode_unverified(token)[1]["auth_time"] + 1000
        clock.advance(500)
        r = await http.get("/api/me", headers=bearer(token))
        assert r.status_code == 200
        renewed = r.headers["new-access-token"]
        assert decode_unverified(renewed)[1]["exp"] <= session_end
        # The renewed token already ends with the session: nothing more to give.
        r = await http.get("/api/me", headers=bearer(renewed))
        assert r.status_code == 200
        assert "new-access-token" not in r.headers
        clock.advance(510)  # past the session end plus the 5 s verification leeway
        assert (await http.get("/api/me", headers=bearer(renewed))).status_code == 401


@pytest.mark.anyio
async def test_payments_step_up_after_login_ages_and_relogin_satisfies_it(
    live_server_factory: Factory,
) -> None:
    clock = FakeClock(time.time())
    live = await start_live(
        live_server_factory, clock=clock, step_up_max_age=300, access_ttl=900
    )
    async with httpx.AsyncClient(base_url=live.url) as http:
        token = (await password_grant(http, live.url))["access_token"]
        assert (
            await http.post("/api/payments", headers=bearer(token))
        ).status_code == 200
        clock.advance(301)
        r = await http.post("/api/payments", headers=bearer(token))
        assert r.status_code == 401
        challenge = r.headers["www-authenticate"]
        assert challenge.startswith('Bearer error="insufficient_user_authentication"')
        assert challenge.endswith("max_age=300")
        assert r.json()["max_age"] == 300
        assert (
            await http.get("/api/me", headers=bearer(token))
        ).status_code == 200  # only payments
        fresh = (await password_grant(http, live.url))["access_token"]
        assert (
            await http.post("/api/payments", headers=bearer(fresh))
        ).status_code == 200


@pytest.mark.anyio
async def test_live_server_answers_non_utf8_and_oversize_headers_without_5xx(
    live_server_factory: Factory,
) -> None:
    live = await start_live(live_server_factory)
    async with httpx.AsyncClient(base_url=live.url) as http:
        token = (await password_grant(http, live.url))["access_token"]
        for value in (
            b"Bearer \xff\xfe" + token.encode(),
            b"Bearer " + b"A" * 9000,
            b"Bearer \x80",
        ):
            r = await http.get("/api/me", headers={"Authorization": value})
            assert r.status_code in (400, 401), (value[:20], r.status_code)


# -- the revocation feed (proposed server route) ------------------------------------


async def revocation_feed(request: Request) -> Response:
    """``GET /auth/revocations?since=N``: the route proposed for the token service."""
    rt = request.app.state.runtime
    since = request.query_params.get("since", "0")
    if not since.isdigit() or len(since) > 18:
        return JSONResponse(
            {"error": "invalid_request", "error_description": "since"}, 400
        )
    revoked, cursor = await rt.store.revocations_since(int(since))
    return JSONResponse(
        {"revoked": revoked, "cursor": cursor}, headers={"Cache-Control": "no-store"}
    )


@pytest.fixture
def service_with_feed(tmp_path: Path) -> Iterator[LiveServer]:
    """The token service plus the proposed feed route, on loopback."""
    settings = make_settings(tmp_path, issuer="https://issuer.test")
    seed_users(settings, {"alice": "secret"})
    app = create_app(settings, passwords=FAST_PASSWORDS)
    app.router.routes.insert(
        0, Route("/auth/revocations", revocation_feed, methods=["GET"])
    )
    served = run_live(app)
    yield next(served)
    for _ in served:
        pass


@pytest.mark.anyio
async def test_third_party_app_following_the_feed_refuses_revoked_session_within_two_seconds(
    service_with_feed: LiveServer,
) -> None:
    live = service_with_feed
    async with (
        httpx.AsyncClient(base_url=live.url) as http,
        example_app(
            "https://issuer.test",
            jwks_url=f"{live.url}/.well-known/jwks.json",
            revocation_url=f"{live.url}/auth/revocations",
            revocation_poll=0.2,
        ) as ex,
    ):
        token = (await password_grant(http, live.url))["access_token"]
        other = (await password_grant(http, live.url))["access_token"]
        assert (
            await ex.client.get("/whoami", headers=bearer(token))
        ).status_code == 200
        assert (
            await http.post("/auth/logout", headers=bearer(token))
        ).status_code == 204
        revoked_at = time.monotonic()
        while (
            await ex.client.get("/whoami", headers=bearer(token))
        ).status_code == 200:
            assert time.monotonic() - revoked_at < 2.0, (
                "third-party app accepted it for 2 s"
            )
            await anyio.sleep(0.05)
        elapsed = time.monotonic() - revoked_at
        assert elapsed < 2.0
        assert (
            await ex.client.get("/whoami", headers=bearer(other))
        ).status_code == 200
        assert ex.auth.revocations is not None and ex.auth.revocations.cursor >= 1
