"""TokenCore wires the settings into the parts it builds: each setting reaches its part."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

from silentauth.core.encoding import b64decode, b64encode
from silentauth.core.hooks import TokenContext
from silentauth.core.keys import MasterKey
from silentauth.core.refresh import RefreshTokens
from silentauth.errors import ClaimsUnavailable
from tests.core.test_sessions import core_with, payload

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
