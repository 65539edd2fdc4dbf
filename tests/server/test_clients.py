"""Registered clients at the token, revocation and introspection endpoints (RFC 6749 §2.3).

Before the registry, client authentication was ignored: made-up Basic
credentials and wrong secrets got 200, the ``client_id`` claim echoed whatever
the caller sent, and anyone could revoke any client's tokens.
"""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest

from silentauth.core.tokens import decode_unverified
from tests.conftest import Service

pytestmark = pytest.mark.anyio

LOGIN = {"grant_type": "password", "username": "alice", "password": "secret"}


def basic(client_id: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


async def gateway(service: Service, name: str = "gateway") -> str:
    _, secret = await service.runtime.clients.register(name, "test")
    assert secret is not None
    return secret


def claims(grant: dict[str, Any]) -> dict[str, Any]:
    return dict(decode_unverified(grant["access_token"])[1])


def assert_invalid_client(r: httpx.Response, *, basic_challenge: bool) -> None:
    assert r.status_code == 401, r.text
    assert r.json()["error"] == "invalid_client"
    assert (r.headers.get("www-authenticate", "").startswith("Basic")) is basic_challenge


async def test_confidential_client_authenticates_with_basic_or_post(service: Service) -> None:
    secret = await gateway(service)
    by_basic = await service.client.post("/auth/token", data=LOGIN, headers=basic("gateway", secret))
    assert by_basic.status_code == 200, by_basic.text
    assert claims(by_basic.json())["client_id"] == "gateway"
    by_post = await service.client.post("/auth/token", data={**LOGIN, "client_id": "gateway", "client_secret": secret})
    assert by_post.status_code == 200 and claims(by_post.json())["client_id"] == "gateway"


async def test_made_up_wrong_or_missing_credentials_are_invalid_client_401(service: Service) -> None:
    secret = await gateway(service)
    c = service.client
    assert_invalid_client(await c.post("/auth/token", data=LOGIN, headers=basic("made-up", "x")), basic_challenge=True)
    assert_invalid_client(await c.post("/auth/token", data=LOGIN, headers=basic("gateway", secret + "x")), basic_challenge=True)
    assert_invalid_client(
        await c.post("/auth/token", data={**LOGIN, "client_id": "gateway", "client_secret": "wrong"}), basic_challenge=False
    )
    # A confidential client's id alone, or a secret for a public client, proves nothing.
    assert_invalid_client(await c.post("/auth/token", data={**LOGIN, "client_id": "gateway"}), basic_challenge=False)
    assert_invalid_client(await c.post("/auth/token", data=LOGIN, headers=basic("native", "")), basic_challenge=True)
    assert_invalid_client(await c.post("/auth/token", data=LOGIN, headers={"Authorization": "Basic %%%"}), basic_challenge=True)
    both = await c.post("/auth/token", data={**LOGIN, "client_secret": secret}, headers=basic("gateway", secret))
    assert both.status_code == 400 and both.json()["error"] == "invalid_request"


async def test_client_id_claim_names_only_registered_clients(service: Service) -> None:
    c = service.client
    assert claims(await service.password_grant())["client_id"] == "native"  # built in, nothing breaks
    assert claims(await service.password_grant(client_id="browser"))["client_id"] == "browser"
    assert_invalid_client(await c.post("/auth/token", data={**LOGIN, "client_id": "billing-api"}), basic_challenge=False)
    await service.runtime.clients.register("mobile-app", confidential=False)
    assert claims(await service.password_grant(client_id="mobile-app"))["client_id"] == "mobile-app"


async def test_refresh_must_come_from_the_client_the_token_was_issued_to(service: Service) -> None:
    secret = await gateway(service)
    other = await gateway(service, "other")
    grant = (await service.client.post("/auth/token", data=LOGIN, headers=basic("gateway", secret))).json()
    refresh = {"grant_type": "refresh_token", "refresh_token": grant["refresh_token"]}
    # Another client's credentials: invalid_grant, and the token is not burned.
    r = await service.client.post("/auth/token", data=refresh, headers=basic("other", other))
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    r = await service.client.post("/auth/token", data=refresh, headers=basic("gateway", secret))
    assert r.status_code == 200 and claims(r.json())["client_id"] == "gateway"
    # Without the secret: invalid_client, and the session and token are untouched.
    bare = {"grant_type": "refresh_token", "refresh_token": r.json()["refresh_token"]}
    assert_invalid_client(await service.client.post("/auth/token", data=bare), basic_challenge=False)
    me = await service.client.get("/api/me", headers={"Authorization": f"Bearer {r.json()['access_token']}"})
    assert me.status_code == 200
    assert (await service.client.post("/auth/token", data=bare, headers=basic("gateway", secret))).status_code == 200


async def test_public_refresh_without_client_id_still_works(service: Service) -> None:
    grant = await service.password_grant()
    assert (await service.refresh(grant["refresh_token"])).status_code == 200


async def test_a_client_revokes_only_its_own_tokens(service: Service) -> None:
    secret = await gateway(service)
    mine = (await service.client.post("/auth/token", data=LOGIN, headers=basic("gateway", secret))).json()
    native = await service.password_grant()

    async def alive(grant: dict[str, Any]) -> bool:
        h = {"Authorization": f"Bearer {grant['access_token']}"}
        return (await service.client.get("/api/me", headers=h)).status_code == 200

    # Anonymous callers cannot revoke a confidential client's token; the answer stays 200 (RFC 7009 §2.2).
    r = await service.client.post("/auth/revoke", data={"token": mine["refresh_token"]})
    assert r.status_code == 200 and await alive(mine)
    # The gateway cannot revoke a native app's token ...
    r = await service.client.post("/auth/revoke", data={"token": native["access_token"]}, headers=basic("gateway", secret))
    assert r.status_code == 200 and await alive(native)
    # ... nor authenticate with a wrong secret.
    r = await service.client.post("/auth/revoke", data={"token": mine["refresh_token"]}, headers=basic("gateway", "no"))
    assert_invalid_client(r, basic_challenge=True)
    # Each revokes its own.
    r = await service.client.post("/auth/revoke", data={"token": mine["refresh_token"]}, headers=basic("gateway", secret))
    assert r.status_code == 200 and not await alive(mine)
    r = await service.client.post("/auth/revoke", data={"token": native["refresh_token"]})
    assert r.status_code == 200 and not await alive(native)


async def test_registry_refuses_builtin_or_malformed_ids(service: Service) -> None:
    from silentauth.errors import AlreadyExists

    clients = service.runtime.clients
    with pytest.raises(AlreadyExists):
        await clients.register("browser")
    with pytest.raises(ValueError):
        await clients.register("has space")
    with pytest.raises(ValueError):
        await clients.remove("native")
    assert [c.client_id for c in await clients.all()] == ["browser", "native"]


async def test_any_confidential_is_cached_when_false_and_kept_once_true(service: Service) -> None:
    """The refresh path's shortcut: a negative answer may be 5 s stale, a positive one never lapses."""
    from silentauth.core.clients import CACHE_SECONDS, ClientRegistry

    ticks = [0.0]
    here = ClientRegistry(service.runtime.store, service.clock, monotonic=lambda: ticks[0])
    elsewhere = ClientRegistry(service.runtime.store, service.clock)  # another instance
    assert await here.any_confidential() is False
    await elsewhere.register("late-gateway")
    assert await here.any_confidential() is False  # cached
    ticks[0] += CACHE_SECONDS
    assert await here.any_confidential() is True
    await elsewhere.remove("late-gateway")
    ticks[0] += 10 * CACHE_SECONDS
    assert await here.any_confidential() is True


async def test_a_client_registered_elsewhere_moments_ago_is_still_refused_without_its_secret(service: Service) -> None:
    """The backstop after rotation, for the 5 s this instance may not know the client yet: 401, no revocation."""
    from silentauth.core.clients import ClientRegistry

    assert await service.runtime.clients.any_confidential() is False  # now cached for 5 s
    await ClientRegistry(service.runtime.store, service.clock).register("late-gateway")
    grant = await service.runtime.service.login("alice", "secret", client_id="late-gateway")
    r = await service.client.post("/auth/token", data={"grant_type": "refresh_token", "refresh_token": grant.refresh_token})
    assert_invalid_client(r, basic_challenge=False)
    me = await service.client.get("/api/me", headers={"Authorization": f"Bearer {grant.access_token}"})
    assert me.status_code == 200  # the session lives on
