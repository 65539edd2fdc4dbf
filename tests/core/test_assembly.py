"""TokenCore wires the settings into the parts it builds: each setting reaches its part."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

from silentauth.core.hooks import TokenContext
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
