"""FileTokenStore: atomic, private, locked across threads and processes."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from silentauth.client import FileTokenStore, MemoryTokenStore, TokenSet, TokenStore

TOKENS = TokenSet("access", "refresh", 1.0, 901.0, scope="api")


def test_file_store_round_trips_and_is_private(tmp_path: Path) -> None:
    store = FileTokenStore(tmp_path / "nested" / "tokens.json")
    assert store.load() is None
    store.save(TOKENS)
    assert FileTokenStore(store.path).load() == TOKENS
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.path.parent.stat().st_mode) == 0o700
    assert sorted(os.listdir(store.path.parent)) == ["tokens.json"]  # no temp files left
    store.clear()
    assert store.load() is None and not store.path.exists()


def test_file_store_expands_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert FileTokenStore("~/t.json").path == tmp_path / "t.json"


def test_unreadable_file_reads_as_logged_out(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    path.write_text("{not json")
    assert FileTokenStore(path).load() is None


def test_file_lock_excludes_other_threads_and_other_store_objects(tmp_path: Path) -> None:
    a, b = FileTokenStore(tmp_path / "t.json"), FileTokenStore(tmp_path / "t.json")
    assert a.acquire(1)
    assert not a.acquire(0)  # same object, other caller: not re-entrant
    assert not b.acquire(0.05)  # another object (its own descriptor): excluded too
    got: list[bool] = []
    t = threading.Thread(target=lambda: got.append(a.acquire(0)))
    t.start()
    t.join()
    assert got == [False]
    a.release()
    assert b.acquire(0)
    b.release()


def test_file_lock_excludes_another_process(tmp_path: Path) -> None:
    store = FileTokenStore(tmp_path / "t.json")
    code = (
        "import sys; from silentauth.client import FileTokenStore; "
        "s = FileTokenStore(sys.argv[1]); print(s.acquire(0))"
    )
    assert store.acquire(1)
    try:
        held = subprocess.run([sys.executable, "-c", code, str(store.path)], capture_output=True, text=True, timeout=30)
    finally:
        store.release()
    free = subprocess.run([sys.executable, "-c", code, str(store.path)], capture_output=True, text=True, timeout=30)
    assert (held.stdout.strip(), free.stdout.strip()) == ("False", "True"), held.stderr


def test_stores_satisfy_the_protocol() -> None:
    assert isinstance(MemoryTokenStore(), TokenStore)
    assert isinstance(FileTokenStore("/nonexistent/x.json"), TokenStore)
    memory = MemoryTokenStore(TOKENS)
    assert memory.load() == TOKENS
    assert memory.acquire(0) and not memory.acquire(0)
    memory.release()
