"""Key rotation across instances, and the revocation feed for third parties."""

from __future__ import annotations

import time

import pytest

from silentauth.core.tokens import decode_unverified
from tests.conftest import Service, ServiceFactory

pytestmark = pytest.mark.anyio


async def test_instance_learns_a_key_rotated_elsewhere_on_first_sight(service_factory: ServiceFactory) -> None:
    a: Service = await service_factory()
    await a.add_user()
    b: Service = await service_factory(settings=a.runtime.settings)  # same store, own key ring
    old = await a.password_grant()
    b.runtime._last_key_reload = time.monotonic() - 5  # as if the last periodic reload were a while ago
    await a.runtime.keys.rotate(a.clock())
    a.clock.advance(a.runtime.keys.prepublish)  # the new key's start
    await a.runtime.reload_keys()
    new = await a.password_grant()
    assert decode_unverified(new["access_token"])[0]["kid"] != decode_unverified(old["access_token"])[0]["kid"]
    for token in (new["access_token"], old["access_token"]):
        r = await b.client.get("/api/me", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200, r.text
    jwks = (await b.client.get("/.well-known/jwks.json")).json()["keys"]
    assert len(jwks) == 2


async def test_a_rotated_key_is_published_before_it_signs_and_signs_before_the_old_one_ends(
    service_factory: ServiceFactory,
) -> None:
    a: Service = await service_factory()
    await a.add_user()
    keys = a.runtime.keys
    old = a.runtime.ring.signing_key(a.clock())
    assert old is not None and keys.prepublish == a.runtime.settings.key_prepublish == 60
    new = await keys.rotate(a.clock())
    await a.runtime.reload_keys()
    published = {k["kid"] for k in (await a.client.get("/.well-known/jwks.json")).json()["keys"]}
    assert published == {old.kid, new.kid}
    signed_by = decode_unverified((await a.password_grant())["access_token"])[0]["kid"]
    assert signed_by == old.kid  # not yet: verifiers are still fetching the new key
    a.clock.advance(keys.prepublish)
    await a.runtime.reload_keys()
    assert decode_unverified((await a.password_grant())["access_token"])[0]["kid"] == new.kid


async def test_the_successor_key_is_made_ahead_without_a_gap(service_factory: ServiceFactory) -> None:
    a: Service = await service_factory()
    keys, clock = a.runtime.keys, a.clock
    first = a.runtime.ring.signing_key(clock())
    assert first is not None
    seen: dict[str, float] = {}  # kid -> when it was first published
    signs: dict[str, float] = {}  # kid -> when it first signed
    # Walk past the first key's end in reload-sized steps, as the runtime does.
    while clock() < first.not_after + 30:
        ring = await keys.load(clock())
        for k in ring:
            seen.setdefault(k.kid, clock())
        signer = ring.signing_key(clock())
        assert signer is not None, f"no key could sign at {clock() - first.not_after:+.0f} s"
        signs.setdefault(signer.kid, clock())
        left = first.not_after - clock()
        clock.advance(left - 600 if left > 600 else 5)
    assert len(seen) == 2, "one successor, not one per reload"
    (successor,) = set(seen) - {first.kid}
    assert signs[successor] - seen[successor] >= keys.prepublish  # published a period ahead
    assert signs[successor] < first.not_after  # and signing before the old key stopped


async def test_forged_kids_do_not_reload_keys_per_request(service: Service) -> None:
    from silentauth.core.encoding import b64encode

    service.runtime._last_key_reload = time.monotonic()
    loads = 0
    original = service.runtime.keys.load

    async def counting(now: float) -> object:
        nonlocal loads
        loads += 1
        return await original(now)

    service.runtime.keys.load = counting  # type: ignore[method-assign]
    for i in range(50):
        header = b64encode(f'{{"alg":"ES256","kid":"forged-{i}","typ":"at+jwt"}}'.encode())
        r = await service.client.get("/api/me", headers={"Authorization": f"Bearer {header}.e30.{'A' * 86}"})
        assert r.status_code == 401
    assert loads == 0  # inside the 1 s learning interval: no reloads at all


async def test_revocation_feed_lists_revoked_sessions_after_a_cursor(service: Service) -> None:
    g1, g2 = await service.password_grant(), await service.password_grant()
    first = (await service.client.get("/auth/revocations")).json()
    assert first["revoked"] == []
    await service.client.post("/auth/logout", headers={"Authorization": f"Bearer {g1['access_token']}"})
    feed = (await service.client.get("/auth/revocations", params={"since": first["cursor"]})).json()
    assert feed["revoked"] == [decode_unverified(g1["access_token"])[1]["sid"]]
    await service.client.post("/auth/logout", headers={"Authorization": f"Bearer {g2['access_token']}"})
    later = (await service.client.get("/auth/revocations", params={"since": feed["cursor"]})).json()
    assert later["revoked"] == [decode_unverified(g2["access_token"])[1]["sid"]]
    bad = await service.client.get("/auth/revocations", params={"since": "-1"})
    assert bad.status_code == 400


async def test_openapi_document_is_served(service: Service) -> None:
    doc = (await service.client.get("/openapi.json")).json()
    assert doc["openapi"].startswith("3.1")
    assert "/auth/token" in doc["paths"]
