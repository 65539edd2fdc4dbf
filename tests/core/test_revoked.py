"""The store-fed revoked set: cursor, eviction, and a feed failure that is not fatal."""

from __future__ import annotations

import logging
from pathlib import Path

import anyio
import pytest

from silentauth.clock import FakeClock
from silentauth.core.ports import SessionRecord
from silentauth.core.revoked import FollowedRevocations, RevocationSet, RevokedSessions
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


class ListFeed(FollowedRevocations):
    """A feed over an in-memory list; ``fetch`` takes ``fetch_seconds`` on the fake clock."""

    def __init__(self, clock: FakeClock, *, poll: float = 10.0, max_entries: int = 1_000_000) -> None:
        super().__init__(poll=poll, max_entries=max_entries, monotonic=clock)
        self.clock = clock
        self.revoked: list[str] = []
        self.failure: Exception | None = None
        self.fetch_seconds = 0.0
        self.cursors: list[int] = []

    @property
    def source(self) -> str:
        return "list"

    async def fetch(self, cursor: int) -> tuple[list[str], int]:
        self.cursors.append(cursor)
        self.clock.advance(self.fetch_seconds)
        if self.failure is not None:
            raise self.failure
        return self.revoked[cursor:], len(self.revoked)


class DefaultBoundFeed(FollowedRevocations):
    """A feed built without ``max_entries``: the base class's bound applies."""

    def __init__(self) -> None:
        super().__init__(poll=1.0)

    @property
    def source(self) -> str:
        return "none"

    async def fetch(self, cursor: int) -> tuple[list[str], int]:
        return [], cursor


class OSErrorFeed(ListFeed):
    """Only ``OSError`` is an expected failure of this feed."""

    recoverable = (OSError,)


def test_the_set_is_bounded_and_evicts_the_oldest_first() -> None:
    revoked = RevokedSessions(max_entries=2)
    revoked.add("s1")
    revoked.add("s2")
    assert "s1" in revoked and "s2" in revoked and len(revoked) == 2
    revoked.add("s2")  # again: no growth, no eviction
    assert "s1" in revoked and len(revoked) == 2
    revoked.add("s3")
    assert "s1" not in revoked and "s2" in revoked and "s3" in revoked and len(revoked) == 2
    assert 3 not in revoked


def test_the_default_bound_is_a_million_sessions(tmp_path: Path) -> None:
    ids = [str(i) for i in range(1_000_000)]
    for revoked in (
        RevokedSessions(),
        RevocationSet(SQLiteStore(f"sqlite:///{tmp_path / 'r.db'}")),
        DefaultBoundFeed(),
    ):
        for sid in ids:
            revoked.add(sid)
        assert "0" in revoked
        revoked.add("one more")
        assert "0" not in revoked and "1" in revoked and len(revoked) == 1_000_000


async def test_the_store_set_polls_every_second_and_names_the_store(tmp_path: Path) -> None:
    revoked = RevocationSet(SQLiteStore(f"sqlite:///{tmp_path / 'r.db'}"))
    assert revoked.poll == 1.0 and revoked.source == "store" and revoked.cursor == 0


async def test_a_sync_is_due_at_first_and_then_every_poll_seconds_after_the_attempt() -> None:
    clock = FakeClock(100.0)
    feed = ListFeed(clock, poll=10.0)
    assert feed.due() and (feed.last_attempt, feed.last_sync) == (None, None)
    feed.fetch_seconds = 2.0
    await feed.sync()
    assert (feed.last_attempt, feed.last_sync) == (100.0, 102.0)
    clock.set(109.999)
    assert not feed.due()
    clock.set(110.0)
    assert feed.due()


async def test_sync_reads_after_the_cursor_and_counts_what_arrived() -> None:
    feed = ListFeed(FakeClock())
    feed.revoked += ["s1", "s2"]
    assert await feed.sync() == 2 and feed.cursor == 2
    feed.revoked.append("s3")
    assert await feed.sync() == 1
    assert feed.cursors == [0, 2] and feed.cursor == 3
    assert all(sid in feed for sid in ("s1", "s2", "s3"))


async def test_a_sync_passes_its_bound_to_the_set() -> None:
    feed = ListFeed(FakeClock(), max_entries=1)
    feed.revoked += ["s1", "s2"]
    await feed.sync()
    assert "s1" not in feed and "s2" in feed and len(feed) == 1


async def test_a_failed_sync_is_an_attempt_not_a_sync(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock(100.0)
    feed = ListFeed(clock)
    feed.revoked.append("s1")
    await feed.sync()
    feed.failure = ValueError("feed down")
    clock.set(200.0)
    with caplog.at_level(logging.WARNING, "silentauth.revocations"):
        assert await feed.sync_quietly() is False
    assert caplog.messages == ["revocation feed list failed: ValueError"]
    assert (feed.last_attempt, feed.last_sync, feed.cursor) == (200.0, 100.0, 1)
    feed.failure = None
    assert await feed.sync_quietly() is True


async def test_an_unexpected_feed_failure_propagates() -> None:
    feed = OSErrorFeed(FakeClock())
    feed.failure = OSError("down")
    assert await feed.sync_quietly() is False
    feed.failure = KeyError("bug")
    with pytest.raises(KeyError):
        await feed.sync_quietly()


async def test_follow_polls_at_its_own_interval_or_the_one_given() -> None:
    feed = ListFeed(FakeClock(), poll=10.0)
    with anyio.move_on_after(0.2):
        await feed.follow()
    assert len(feed.cursors) == 1  # then sleeps 10 s
    feed.cursors.clear()
    with anyio.move_on_after(0.2):
        await feed.follow(poll=0.01)
    assert len(feed.cursors) >= 3
