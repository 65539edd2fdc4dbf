"""Concurrent rotations of many sessions, and a store that goes away mid-flight."""

from __future__ import annotations

import anyio
import pytest

from silentauth.core.rotation_rules import RETRY_WINDOW
from tests.conftest import Service

pytestmark = pytest.mark.anyio


async def test_concurrent_rotations_of_many_sessions_each_rotate_once(service: Service) -> None:
    grants = [await service.password_grant() for _ in range(60)]
    results: dict[int, list[str]] = {}

    async def refresh(i: int, token: str) -> None:
        r = await service.refresh(token)
        assert r.status_code == 200, r.text
        results.setdefault(i, []).append(r.json()["refresh_token"])

    async with anyio.create_task_group() as tg:
        for i, g in enumerate(grants):
            for _ in range(3):  # each token raced three times inside one batch
                tg.start_soon(refresh, i, g["refresh_token"])
    assert all(len(set(v)) == 1 and len(v) == 3 for v in results.values())
    assert service.metric("silentauth_refresh_total", outcome="rotated") == 60
    assert service.metric("silentauth_refresh_total", outcome="grace") == 120
    counters = {s.counter for g in grants for s in await service.runtime.store.list_sessions(
        (await service.runtime.store.get_user("alice")).id  # type: ignore[union-attr]
    )}
    assert counters == {1}


async def test_a_failing_batch_reports_store_unavailable_not_invalid_grant(service: Service) -> None:
    g = await service.password_grant()
    await service.runtime.store.close()  # the database goes away under the service
    r = await service.refresh(g["refresh_token"])
    assert r.status_code == 503
    assert r.json()["error"] == "temporarily_unavailable" and "retry-after" in r.headers
    await service.runtime.store.open()
    assert (await service.refresh(g["refresh_token"])).status_code == 200


async def test_refreshes_started_together_rotate_in_shared_batches(service: Service) -> None:
    grants = [await service.password_grant() for _ in range(40)]
    async with anyio.create_task_group() as tg:
        for g in grants:
            tg.start_soon(service.refresh, g["refresh_token"])
    assert service.metric("silentauth_refresh_total", outcome="rotated") == 40
    assert service.metric("silentauth_refresh_batch_size_sum") == 40
    assert service.metric("silentauth_refresh_batch_size_count") < 40


async def test_a_replayed_token_in_a_batch_revokes_its_session_alone(service: Service) -> None:
    victim, bystander = await service.password_grant(), await service.password_grant()
    stolen = victim["refresh_token"]
    owned = (await service.refresh(stolen)).json()["refresh_token"]  # the owner rotates
    assert (await service.refresh(owned)).status_code == 200  # and uses the successor
    service.clock.advance(RETRY_WINDOW + 1)
    answers: dict[str, int] = {}
    batches_before = service.metric("silentauth_refresh_batch_size_count")

    async def refresh(name: str, token: str) -> None:
        answers[name] = (await service.refresh(token)).status_code

    async with anyio.create_task_group() as tg:
        tg.start_soon(refresh, "thief", stolen)
        tg.start_soon(refresh, "bystander", bystander["refresh_token"])
    assert answers == {"thief": 400, "bystander": 200}
    assert service.metric("silentauth_refresh_batch_size_count") == batches_before + 1  # one batch
    assert service.metric("silentauth_refresh_total", outcome="reuse_detected") == 1
    store = service.runtime.store
    victim_sid = service.runtime.service.session_of(stolen)
    bystander_sid = service.runtime.service.session_of(bystander["refresh_token"])
    assert (await store.get_session(victim_sid)).revoked_reason == "reuse"  # type: ignore[union-attr]
    assert (await store.get_session(bystander_sid)).revoked_at is None  # type: ignore[union-attr]
