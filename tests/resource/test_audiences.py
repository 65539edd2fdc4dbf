"""RFC 8707 resource indicators: each API accepts only the tokens meant for it.

The token service runs on loopback with two resources configured; two copies of
``examples/fastapi_app.py`` verify from its JWKS, each with its own audience.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from silentauth.core.tokens import decode_unverified
from tests.conftest import LiveServer
from tests.resource.conftest import bearer, example_app, start_live

ISSUER = "https://issuer.test"
BILLING, FILES = "https://billing.example", "https://files.example/v1"
Factory = Callable[..., LiveServer]
LOGIN = {"grant_type": "password", "username": "alice", "password": "secret"}


def aud(grant: dict[str, Any]) -> Any:
    return decode_unverified(grant["access_token"])[1]["aud"]


async def token(http: httpx.AsyncClient, content: str) -> httpx.Response:
    return await http.post(
        "/auth/token", content=content, headers={"Content-Type": "application/x-www-form-urlencoded"}
    )


def form(**extra: str | list[str]) -> str:
    return str(httpx.QueryParams({**LOGIN, **extra}))


@pytest.mark.anyio
async def test_each_api_accepts_only_tokens_for_its_own_audience(live_server_factory: Factory) -> None:
    live = await start_live(live_server_factory, issuer=ISSUER, resources=(BILLING, FILES))
    jwks = {"jwks_url": f"{live.url}/.well-known/jwks.json"}
    async with (
        httpx.AsyncClient(base_url=live.url) as http,
        example_app(ISSUER, audience=BILLING, **jwks) as billing,
        example_app(ISSUER, audience=FILES, **jwks) as files,
        example_app(ISSUER, **jwks) as default,
    ):
        for_billing = (await token(http, form(resource=BILLING))).json()
        assert aud(for_billing) == BILLING
        plain = (await token(http, form())).json()
        assert aud(plain) == "silentauth"

        async def status(app: Any, grant: dict[str, Any]) -> int:
            return int((await app.client.get("/whoami", headers=bearer(grant["access_token"]))).status_code)

        assert [await status(a, for_billing) for a in (billing, files, default)] == [200, 401, 401]
        assert [await status(a, plain) for a in (billing, files, default)] == [401, 401, 200]
        refused = await billing.client.get("/whoami", headers=bearer(plain["access_token"]))
        assert "audience" in refused.json()["error_description"]


@pytest.mark.anyio
async def test_several_resources_then_a_refresh_narrows_but_never_widens(live_server_factory: Factory) -> None:
    live = await start_live(live_server_factory, issuer=ISSUER, resources=(BILLING, FILES))
    async with httpx.AsyncClient(base_url=live.url) as http:
        both = (await token(http, form(resource=[BILLING, FILES]))).json()
        assert aud(both) == [BILLING, FILES]
        narrowed = await token(
            http, str(httpx.QueryParams({"grant_type": "refresh_token", "refresh_token": both["refresh_token"], "resource": FILES}))
        )
        assert narrowed.status_code == 200 and aud(narrowed.json()) == FILES
        # Narrowing a request does not shrink the session: the next plain refresh gets both again.
        again = await token(http, str(httpx.QueryParams({"grant_type": "refresh_token", "refresh_token": narrowed.json()["refresh_token"]})))
        assert aud(again.json()) == [BILLING, FILES]

        only_billing = (await token(http, form(resource=BILLING))).json()
        widened = await token(
            http,
            str(httpx.QueryParams({"grant_type": "refresh_token", "refresh_token": only_billing["refresh_token"], "resource": [BILLING, FILES]})),
        )
        assert widened.status_code == 400 and widened.json()["error"] == "invalid_target"
        # Refused before rotating: the token is still good.
        ok = await token(http, str(httpx.QueryParams({"grant_type": "refresh_token", "refresh_token": only_billing["refresh_token"]})))
        assert ok.status_code == 200 and aud(ok.json()) == BILLING


@pytest.mark.anyio
async def test_unknown_or_malformed_resource_is_invalid_target(live_server_factory: Factory) -> None:
    live = await start_live(live_server_factory, issuer=ISSUER, resources=(BILLING,))
    async with httpx.AsyncClient(base_url=live.url) as http:
        for resource in ("https://evil.example", "billing", BILLING + "#frag"):
            r = await token(http, form(resource=resource))
            assert r.status_code == 400 and r.json()["error"] == "invalid_target", resource
        # Only `resource` may repeat (RFC 8707 §2); anything else stays refused (RFC 6749 §3.2).
        r = await token(http, form(scope=["api", "profile"]))
        assert r.status_code == 400 and r.json()["error"] == "invalid_request"
