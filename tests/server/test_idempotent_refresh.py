"""Idempotent refresh retries (``Idempotency-Key``) through the real app, native and browser.

A refresh whose answer was lost is retried with the same token and key: it gets
the same successor, at any time within the session's lifetimes. Without the key
(or with another) the rotation rule judges the late token as before.
"""

from __future__ import annotations

import secrets

import httpx
import pytest

from tests.conftest import Service

pytestmark = pytest.mark.anyio


def new_key() -> str:
    return secrets.token_urlsafe(16)


async def keyed(service: Service, token: str, key: str) -> httpx.Response:
    return await service.client.post(
        "/auth/token",
        data={"grant_type": "refresh_token", "refresh_token": token},
        headers={"Idempotency-Key": f'"{key}"'},
    )


async def test_a_lost_answer_retried_with_its_key_after_the_grace_window_gets_the_same_successor(
    service: Service,
) -> None:
    first = (await service.password_grant())["refresh_token"]
    key = new_key()
    lost = await keyed(service, first, key)  # the server committed; the client never heard
    assert lost.status_code == 200
    service.clock.advance(service.runtime.settings.reuse_grace * 100)  # a laptop lid closed
    retry = await keyed(service, first, key)
    assert retry.status_code == 200, retry.text
    assert retry.json()["refresh_token"] == lost.json()["refresh_token"]
    assert retry.json()["access_token"] != lost.json()["access_token"]  # a fresh access token
    again = await keyed(service, first, key)  # that answer was lost as well
    assert again.json()["refresh_token"] == lost.json()["refresh_token"]
    assert service.metric("silentauth_refresh_total", outcome="retried") == 2
    # The re-delivered successor is the live token: it rotates normally.
    nxt = await service.refresh(retry.json()["refresh_token"])
    assert nxt.status_code == 200
    assert service.metric("silentauth_sessions_revoked_total", reason="reuse") == 0


async def test_a_retry_with_another_key_or_none_after_the_window_is_reuse(service: Service) -> None:
    first = (await service.password_grant())["refresh_token"]
    assert (await keyed(service, first, new_key())).status_code == 200
    service.clock.advance(service.runtime.settings.reuse_grace + 1)
    wrong = await keyed(service, first, new_key())
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
    assert service.metric("silentauth_sessions_revoked_total", reason="reuse") == 1


async def test_the_key_does_not_revive_a_token_whose_successor_was_used(service: Service) -> None:
    first = (await service.password_grant())["refresh_token"]
    key = new_key()
    second = (await keyed(service, first, key)).json()["refresh_token"]
    assert (await service.refresh(second)).status_code == 200  # successor used: the retry is stale
    service.clock.advance(service.runtime.settings.reuse_grace + 1)
    late = await keyed(service, first, key)
    assert late.status_code == 400 and late.json()["error"] == "invalid_grant"
    assert service.metric("silentauth_sessions_revoked_total", reason="reuse") == 1


async def test_the_key_does_not_outlive_the_session(service: Service) -> None:
    first = (await service.password_grant())["refresh_token"]
    key = new_key()
    assert (await keyed(service, first, key)).status_code == 200
    service.clock.advance(service.runtime.settings.refresh_idle_ttl + 1)
    late = await keyed(service, first, key)
    assert late.status_code == 400 and "expired" in late.json()["error_description"]


@pytest.mark.parametrize(
    "value",
    ["short", "x" * 129, "a" * 21, "not base64url!!!!!!!!!!!!", '"' + "a" * 130 + '"', "ünïcode" * 5],
)
async def test_a_malformed_key_is_a_400_and_rotates_nothing(service: Service, value: str) -> None:
    first = (await service.password_grant())["refresh_token"]
    r = await service.client.post(
        "/auth/token",
        data={"grant_type": "refresh_token", "refresh_token": first},
        headers={"Idempotency-Key": value.encode()},  # type: ignore[dict-item]
    )
    assert r.status_code == 400 and r.json()["error"] == "invalid_request", r.text
    assert service.metric("silentauth_refresh_total", outcome="rotated") == 0
    assert (await service.refresh(first)).status_code == 200  # the token was not burnt


async def test_the_store_keeps_a_hash_of_the_key_never_the_key(service: Service) -> None:
    grant = await service.password_grant()
    key = new_key()
    assert (await keyed(service, grant["refresh_token"], key)).status_code == 200
    sid = service.runtime.service.session_of(grant["refresh_token"])
    row = await service.runtime.store.get_session(sid)
    assert row is not None and row.rotation_key and key not in repr(row)


async def test_browser_refresh_retried_with_its_key_after_the_window_keeps_the_session(service: Service) -> None:
    await service.add_user()
    login = await service.client.post("/auth/login", json={"username": "alice", "password": "secret"})
    assert login.status_code == 200, login.text
    csrf = login.json()["csrf_token"]
    jar_before = dict(service.client.cookies)
    key = new_key()
    lost = await service.client.post("/auth/refresh", headers={"X-CSRF-Token": csrf, "Idempotency-Key": key})
    assert lost.status_code == 200, lost.text
    # The page never heard: its cookie jar still holds the old refresh cookie.
    service.client.cookies.clear()
    service.client.cookies.update(jar_before)
    service.clock.advance(service.runtime.settings.reuse_grace + 60)
    retry = await service.client.post("/auth/refresh", headers={"X-CSRF-Token": csrf, "Idempotency-Key": key})
    assert retry.status_code == 200, retry.text
    assert service.metric("silentauth_refresh_total", outcome="retried") == 1
    me = await service.client.get("/api/me", headers={"Authorization": f"Bearer {retry.json()['access_token']}"})
    assert me.status_code == 200


async def test_cors_preflight_allows_the_idempotency_key_header() -> None:
    from silentauth.server.cors import ALLOW_HEADERS

    assert "Idempotency-Key" in [h.strip() for h in ALLOW_HEADERS.split(",")]
