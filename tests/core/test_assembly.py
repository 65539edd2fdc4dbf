"""TokenCore wires the settings into the parts it builds: each setting reaches its part."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import anyio
import pytest

from silentauth.clock import FakeClock
from silentauth.core.assembly import TokenCore
from silentauth.core.encoding import b64decode, b64encode
from silentauth.core.hooks import Lifetimes, TokenContext
from silentauth.core.identity import Identity, RequestInfo
from silentauth.core.keys import MasterKey
from silentauth.core.passwords import Passwords
from silentauth.core.refresh import RefreshTokens
from silentauth.errors import ClaimsUnavailable, ConfigError, IdentityUnavailable
from silentauth.settings import Settings
from silentauth.stores.sqlite import SQLiteStore
from tests.core.test_sessions import Directory, core_with, payload

pytestmark = pytest.mark.anyio


async def test_claims_max_bytes_bounds_what_a_claims_hook_may_add(tmp_path: Path) -> None:
    async def claims(context: TokenContext) -> dict[str, Any]:
        return {"blob": "x" * 3000}

    # Above the 2048-byte default, allowed by the setting...
    async with core_with(tmp_path / "wide", claims=claims, claims_max_bytes=4096) as w:
        grant = await w.service.login("alice", "secret")
        assert payload(grant.access_token)["blob"] == "x" * 3000
    # ...and refused (nothing issued) when the setting is lower.
    async with core_with(tmp_path / "narrow", claims=claims, claims_max_bytes=1024) as w:
        with pytest.raises(ClaimsUnavailable):
            await w.service.login("alice", "secret")


async def test_a_hook_that_hangs_is_cut_off_after_identity_timeout(tmp_path: Path) -> None:
    async def claims(context: TokenContext) -> dict[str, Any]:
        await anyio.sleep(1.0)  # far beyond the setting below, well inside the 5 s default
        return {}

    async with core_with(tmp_path, claims=claims, identity_timeout=0.05) as w:
        with anyio.fail_after(0.8):  # cut off by the setting, not by the hook finishing
            with pytest.raises(ClaimsUnavailable):
                await w.service.login("alice", "secret")


async def test_the_secret_comes_from_secret_key_file_when_no_secret_key_is_set(tmp_path: Path) -> None:
    raw = bytes(range(32))
    secret_file = tmp_path / "secret.key"
    secret_file.write_text(b64encode(raw))
    async with core_with(tmp_path, secret_key="", secret_key_file=str(secret_file)) as w:
        grant = await w.service.login("alice", "secret")
    # Another instance holding the same file accepts this instance's refresh tokens.
    assert RefreshTokens(MasterKey(raw)).parse(grant.refresh_token)[0] == grant.session.id


async def test_without_any_secret_an_embedded_sqlite_service_keeps_one_beside_its_database(tmp_path: Path) -> None:
    async with core_with(tmp_path, secret_key="") as w:
        grant = await w.service.login("alice", "secret")
    raw = b64decode((tmp_path / "core.db.key").read_text().strip())
    assert RefreshTokens(MasterKey(raw)).parse(grant.refresh_token)[0] == grant.session.id


async def test_a_retired_signing_key_verifies_for_one_access_token_lifetime_and_a_minute(tmp_path: Path) -> None:
    async with core_with(tmp_path, access_ttl=300) as w:
        key = w.core.ring.signing_key(w.clock())
        assert key is not None
        # A token signed at the last moment lives ACCESS_TTL; 60 s more covers clock skew.
        assert w.core.ring.get(key.kid, key.not_after + 359) is key
        assert w.core.ring.get(key.kid, key.not_after + 360) is None


# Plug-ins named by setting ('module:attribute'), as an operator configures them.
DIRECTORY = Directory(carol=Identity("u-carol", "carol"))


async def tenant_claims(context: TokenContext) -> dict[str, Any]:
    return {"tenant": "t-1"}


async def kiosk_lifetimes(context: TokenContext) -> Lifetimes:
    return Lifetimes(access_ttl=60)


def core_from_settings(tmp_path: Path, **values: Any) -> TokenCore:
    """A TokenCore built from settings alone, as ``silentauth serve`` builds it."""
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'core.db'}",
        secret_key="core-test-secret-with-at-least-32-bytes",
        ttl_jitter=0.0,
        first_token_spread=0.0,
        **values,
    )
    return TokenCore(
        settings=settings,
        store=SQLiteStore(settings.database_url),
        clock=FakeClock(1_800_000_000.0),
        passwords=Passwords(time_cost=1, memory_cost=1024, parallelism=1),
    )


async def test_plug_ins_named_in_the_settings_are_the_ones_used(tmp_path: Path) -> None:
    here = __name__
    core = core_from_settings(
        tmp_path,
        identity=f"{here}:DIRECTORY",
        claims_hook=f"{here}:tenant_claims",
        lifetime_hook=f"{here}:kiosk_lifetimes",
    )
    await core.store.open()
    try:
        await core.start()
        grant = await core.service.login("carol", "any password")
    finally:
        await core.store.close()
    body = payload(grant.access_token)
    assert (body["sub"], body["tenant"], body["exp"] - body["iat"]) == ("u-carol", "t-1", 60)


@pytest.mark.parametrize("setting", ["identity", "claims_hook", "lifetime_hook"])
@pytest.mark.parametrize(
    "spec",
    ["no.such.module:thing", "silentauth.core.resources:MAX_RESOURCES"],  # unimportable; no plug-in
)
def test_a_broken_plug_in_setting_is_named_in_the_error(tmp_path: Path, setting: str, spec: str) -> None:
    with pytest.raises(ConfigError) as refused:
        core_from_settings(tmp_path, **{setting: spec})
    assert refused.value.name == setting.upper()


class Hanging:
    """An identity provider whose directory never answers."""

    async def authenticate(self, username: str, password: str, request: RequestInfo) -> Identity | None:
        await anyio.sleep(1.0)
        return None


async def test_an_identity_provider_that_hangs_is_cut_off_after_identity_timeout(tmp_path: Path) -> None:
    async with core_with(tmp_path, identity=Hanging(), identity_timeout=0.05) as w:  # type: ignore[arg-type]
        with anyio.fail_after(0.8):  # cut off by the setting, well inside the 5 s default
            with pytest.raises(IdentityUnavailable):
                await w.service.login("carol", "secret")


async def test_a_seeded_core_jitters_lifetimes_reproducibly(tmp_path: Path) -> None:
    # `silentauth storm` builds its cores with a seeded PRNG to replay a cohort.
    async def expiries(path: Path) -> list[int]:
        path.mkdir()
        settings = Settings(
            database_url=f"sqlite:///{path / 'core.db'}",
            secret_key="core-test-secret-with-at-least-32-bytes",
            ttl_jitter=0.5,
            first_token_spread=0.9,
        )
        core = TokenCore(
            settings=settings,
            store=SQLiteStore(settings.database_url),
            clock=FakeClock(1_800_000_000.0),
            passwords=Passwords(time_cost=1, memory_cost=1024, parallelism=1),
            rng=random.Random(5),
        )
        await core.store.open()
        try:
            await core.start()
            await core.users.add("alice", "secret")
            return [(await core.service.login("alice", "secret")).expires_in for _ in range(3)]
        finally:
            await core.store.close()

    assert await expiries(tmp_path / "a") == await expiries(tmp_path / "b")


async def test_the_revocation_set_asks_the_store_again_after_revocation_poll(tmp_path: Path) -> None:
    # Another instance's revocations reach this one within REVOCATION_POLL seconds.
    async with core_with(tmp_path, revocation_poll=0.05) as w:
        await w.core.revocations.sync()
        assert not w.core.revocations.due()
        await anyio.sleep(0.1)  # well short of RevocationSet's own 1 s default
        assert w.core.revocations.due()
