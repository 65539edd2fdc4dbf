"""Files at rest: the SQLite database, its -wal/-shm files and the key file are owner-only.

Real files, real SQLite, modes read back with ``os.stat``. A new file is
created 0600 whatever the umask; an existing one that group or others can
access is reported at start with the fix (and left as the operator set it).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from silentauth.core.files import create_private, exposed_mode
from silentauth.core.keys import MasterKey
from silentauth.core.ports import User
from silentauth.stores.sqlite import SQLiteStore
from tests.conftest import mode

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")


@pytest.mark.anyio
@pytest.mark.parametrize("mask", [0o022, 0o002, 0o000], ids=["umask022", "umask002", "umask000"])
async def test_new_database_and_its_wal_and_shm_are_created_0600(
    tmp_path: Path, umask: None, mask: int
) -> None:
    os.umask(mask)
    db = tmp_path / "data" / "auth.db"
    store = SQLiteStore(f"sqlite:///{db}")
    await store.open()
    try:
        await store.add_user(User("u1", "alice", "$argon2id$hash", 0.0))
        # WAL mode: while the store is open, both side files exist.
        for path in (db, Path(f"{db}-wal"), Path(f"{db}-shm")):
            assert path.exists(), path
            assert mode(path) == 0o600, (path, oct(mode(path)))
    finally:
        await store.close()


@pytest.mark.anyio
async def test_umask_that_strips_the_owner_write_bit_still_gives_a_usable_0600_file(
    tmp_path: Path, umask: None
) -> None:
    os.umask(0o277)
    db = tmp_path / "auth.db"
    store = SQLiteStore(f"sqlite:///{db}")
    await store.open()
    try:
        await store.add_user(User("u1", "alice", "h", 0.0))
        assert await store.get_user("alice") is not None
        assert mode(db) == 0o600
    finally:
        await store.close()


@pytest.mark.anyio
async def test_exposed_existing_database_is_reported_with_the_fix_and_left_as_set(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "auth.db"
    first = SQLiteStore(f"sqlite:///{db}")
    await first.open()
    await first.close()
    os.chmod(db, 0o644)
    caplog.set_level(logging.WARNING, logger="silentauth.files")
    store = SQLiteStore(f"sqlite:///{db}")
    await store.open()
    try:
        lines = [r.getMessage() for r in caplog.records if r.name == "silentauth.files"]
        assert lines == [
            f"silentauth: SQLite database file {db} is accessible to group or others "
            f"(mode 0644); fix: chmod 600 {db}"
        ]
        assert mode(db) == 0o644  # reported, not changed behind the operator's back
    finally:
        await store.close()


@pytest.mark.anyio
async def test_private_database_gives_no_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="silentauth.files")
    for _ in range(2):  # first start creates it, second start checks it
        store = SQLiteStore(f"sqlite:///{tmp_path / 'auth.db'}")
        await store.open()
        await store.close()
    assert [r for r in caplog.records if r.name == "silentauth.files"] == []


def test_key_file_is_created_0600_and_an_exposed_one_is_reported(
    tmp_path: Path, umask: None, caplog: pytest.LogCaptureFixture
) -> None:
    os.umask(0o000)
    url = f"sqlite:///{tmp_path / 'auth.db'}"
    key = tmp_path / "auth.db.key"
    caplog.set_level(logging.WARNING, logger="silentauth.files")
    first = MasterKey.from_settings("", "", url)
    assert mode(key) == 0o600
    assert caplog.records == []
    os.chmod(key, 0o640)
    again = MasterKey.from_settings("", "", url)
    assert again.derive("x") == first.derive("x")
    assert [r.getMessage() for r in caplog.records] == [
        f"silentauth: secret key file {key} is accessible to group or others "
        f"(mode 0640); fix: chmod 600 {key}"
    ]


def test_create_private_leaves_an_existing_file_alone(tmp_path: Path) -> None:
    path = tmp_path / "f"
    assert create_private(path) is True
    assert mode(path) == 0o600 and exposed_mode(path) is None
    path.write_text("data")
    os.chmod(path, 0o604)
    assert create_private(path) is False
    assert path.read_text() == "data" and exposed_mode(path) == 0o604
    assert exposed_mode(tmp_path / "missing") is None
