"""The store-fed revoked set: cursor, eviction, and a feed failure that is not fatal."""

from __future__ import annotations

import logging
from pathlib import Path

import anyio
import pytest

from silentauth.core.ports import SessionRecord
from silentauth.core.revoked import RevocationSet
from silentauth.stores.sqlite import SQLiteStore

pytestmark = pytest.mark.anyio

NOW = 1_800_000_000.0


def _session(sid: str) -> SessionRecord:
    return SessionRecord(
        id=sid, user_id="u", username="alice", counter=0, scope="api", client_id="c",
        auth_time=NOW, created_at=NOW, last_used_at=NOW, rotated_at=NOW,
        idle_expires_at=NOW + 3600, expires_at=NOW + 7200,
    )


async def test_sync_follows_the_store_feed_by_cursor(tmp_path: Path) -> None:
    store = SQLiteStore(f"sqlite:///{tmp_path / 'r.db'}")
    await store.open()
    try:
        for sid in ("s1", "s2", "s3"):
            await store.create_session(_session(sid))
        revoked = RevocationSet(store, poll=0.01, max_entries=2)
        assert await revoked.sync() == 0 and revoked.last_sync is not None
        await store.revoke_session("s1", "admin", NOW)  # as another instance would
        await store.revoke_session("s2", "admin", NOW)
        assert await revoked.sync() == 2 and "s1" in revoked and "s2" in revoked
        assert await revoked.sync() == 0  # the cursor moved past them
        await store.revoke_session("s3", "admin", NOW)
        assert await revoked.sync() == 1
        assert "s1" not in revoked and len(revoked) == 2  # oldest evicted first
    finally:
        await store.close()


async def test_a_failing_store_is_logged_and_retried_not_fatal(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = SQLiteStore(f"sqlite:///{tmp_path / 'r.db'}")
    revoked = RevocationSet(store, poll=0.01)
    caplog.set_level(logging.WARNING, "silentauth.revocations")
    # The store is not open yet: every poll fails, the loop goes on.
    with anyio.move_on_after(0.1):
        await revoked.follow()
    failures = [r for r in caplog.records if "revocation feed store failed" in r.getMessage()]
    assert len(failures) >= 2 and revoked.last_sync is None
    await store.open()
    try:
        await store.create_session(_session("s1"))
        await store.revoke_session("s1", "logout", NOW)
        with anyio.move_on_after(0.1):
            await revoked.follow()
        assert "s1" in revoked and revoked.last_sync is not None
    finally:
        await store.close()
