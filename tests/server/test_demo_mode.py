"""Demo mode's replay helper: the replaced refresh token is kept in demo mode only.

Outside demo mode nothing is kept: no observer, no stash, the routes answer 404, and
no live container object anywhere in the process still holds the replaced token.
"""

from __future__ import annotations

import gc
from typing import Any

import pytest

from silentauth.core.sessions import Grant
from silentauth.server.demo_routes import ReplayStash
from tests.conftest import Service, ServiceFactory

pytestmark = pytest.mark.anyio

REFRESH = "silentauth-refresh"


async def start(service_factory: ServiceFactory, demo: bool) -> Service:
    # The demo page shows the one-generation grace window, as the demo mode sets it.
    svc: Service = await service_factory(demo=demo, reuse_grace=10.0, rotation_rule="grace")
    await svc.add_user()
    return svc


async def login_and_refresh(svc: Service) -> tuple[str, dict[str, Any]]:
    """Log in as a browser and refresh once: (the replaced refresh token, the new grant)."""
    r = await svc.client.post("/auth/login", json={"username": "alice", "password": "secret"})
    assert r.status_code == 200, r.text
    replaced = svc.client.cookies.get(REFRESH)
    assert replaced
    r = await svc.client.post("/auth/refresh", headers={"X-CSRF-Token": r.json()["csrf_token"]})
    assert r.status_code == 200, r.text
    assert svc.client.cookies.get(REFRESH) != replaced
    return replaced, dict(r.json())


def held_anywhere(token: str) -> bool:
    """Whether any container the garbage collector tracks holds ``token`` as an item.

    Strings are compared only with strings: objects such as ``unittest.mock.ANY`` equal
    everything. Types are read with ``type(...)``, never ``isinstance``: a lazy proxy
    (Django's ``admin.site``, loaded by the DRF tests) evaluates itself on ``__class__``.
    """

    def holds(items: Any) -> bool:
        return any(type(item) is str and item == token for item in items)

    gc.collect()
    for obj in gc.get_objects():
        kind = type(obj)
        if issubclass(kind, dict):
            values = list(obj.values())
            if holds(values) or any(holds(v) for v in values if type(v) is tuple):
                return True
        elif issubclass(kind, list | tuple | set | frozenset) and holds(obj):
            return True
    return False


def bearer(grant: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {grant['access_token']}"}


async def test_outside_demo_mode_no_replaced_refresh_token_is_kept(service_factory: ServiceFactory) -> None:
    svc = await start(service_factory, demo=False)
    replaced, grant = await login_and_refresh(svc)

    assert svc.runtime.browser_refresh_observers == []
    assert getattr(svc.app.state, "demo_replay", None) is None
    assert not held_anywhere(replaced)
    assert (await svc.client.get("/auth/demo")).json() == {"demo": False}
    for path in ("/auth/demo/old-refresh-token", "/auth/demo/session-end"):
        r = await svc.client.get(path, headers=bearer(grant))
        assert r.status_code == 404 and r.json()["error"] == "not_found"
        assert r.headers["cache-control"] == "no-store"


async def test_in_demo_mode_the_replaced_token_is_kept_and_its_replay_is_reuse(
    service_factory: ServiceFactory,
) -> None:
    svc = await start(service_factory, demo=True)
    replaced, grant = await login_and_refresh(svc)
    assert held_anywhere(replaced), "the check above can see a kept token"
    assert (await svc.client.get("/auth/demo")).json()["reuse_grace"] == 10.0

    r = await svc.client.get("/auth/demo/old-refresh-token", headers=bearer(grant))
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    assert r.json()["refresh_token"] == replaced
    assert r.json()["wait"] == pytest.approx(10.0)
    svc.clock.advance(11)
    r = await svc.client.get("/auth/demo/old-refresh-token", headers=bearer(grant))
    assert r.json()["wait"] == 0
    assert (await svc.client.get("/auth/demo/session-end")).json()["state"] == "live"

    replay = await svc.refresh(replaced)
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    assert svc.metric("silentauth_refresh_total", outcome="reuse_detected") == 1
    end = (await svc.client.get("/auth/demo/session-end")).json()
    assert end == {"state": "revoked", "reason": "reuse", "session_id": end["session_id"]}


async def test_demo_helpers_need_a_session_and_a_past_refresh(service_factory: ServiceFactory) -> None:
    svc = await start(service_factory, demo=True)
    assert (await svc.client.get("/auth/demo/old-refresh-token")).status_code == 401
    assert (await svc.client.get("/auth/demo/session-end")).json() == {"state": "none"}
    r = await svc.client.post("/auth/login", json={"username": "alice", "password": "secret"})
    nothing = await svc.client.get("/auth/demo/old-refresh-token", headers=bearer(r.json()))
    assert nothing.status_code == 200 and nothing.json()["refresh_token"] is None
    assert "not refreshed yet" in nothing.json()["detail"]
    svc.client.cookies.set(REFRESH, "v1.forged")
    assert (await svc.client.get("/auth/demo/session-end")).json() == {"state": "none"}


def test_the_stash_keeps_rotations_only_and_forgets_the_oldest_sessions() -> None:
    now = [100.0]
    stash = ReplayStash(lambda: now[0], limit=2)

    def grant(outcome: str) -> Grant:
        return Grant("a", 1, "r", "s", None, outcome)  # type: ignore[arg-type]

    stash.keep("s1", "old1", grant("grace"))
    assert stash.get("s1") is None, "a grace answer replaced nothing"
    for n in (1, 2, 3):
        stash.keep(f"s{n}", f"old{n}", grant("rotated"))
    assert len(stash) == 2 and stash.get("s1") is None
    assert stash.get("s3") == ("old3", 100.0)
