"""Where a client keeps its tokens, and the lock that makes refresh single-flight.

A store is also the *coordination point*: :meth:`TokenStore.acquire` is held
across a refresh, and the client re-reads the store after acquiring it, so any
holder that shares the store (threads, other :class:`TokenAuth` objects, and —
with :class:`FileTokenStore` — other processes) sees a refresh that happened
while it waited, instead of spending the rotated refresh token a second time.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Protocol, runtime_checkable

from filelock import FileLock, Timeout

from silentauth.client.token_set import TokenSet

log = logging.getLogger("silentauth.client")


@runtime_checkable
class TokenStore(Protocol):
    """Persistence plus a lock held across refresh.

    ``acquire(timeout)`` returns ``False`` when the lock could not be had in
    ``timeout`` seconds (``0`` means a single try); ``release()`` may be
    called from another thread than the one that acquired.
    """

    def load(self) -> TokenSet | None: ...

    def save(self, tokens: TokenSet) -> None: ...

    def clear(self) -> None: ...

    def acquire(self, timeout: float) -> bool: ...

    def release(self) -> None: ...


def _acquire_thread_lock(lock: threading.Lock, timeout: float) -> bool:
    if timeout <= 0:
        return lock.acquire(blocking=False)
    return lock.acquire(timeout=timeout)


class MemoryTokenStore:
    """Tokens in this process's memory only: the default.

    Shared by several :class:`TokenAuth` objects, it still gives one refresh.
    Across ``fork()`` it is copied, not shared: use :class:`FileTokenStore`
    for pre-forked workers.
    """

    def __init__(self, tokens: TokenSet | None = None) -> None:
        self._tokens = tokens
        self._pid = os.getpid()
        self._lock = threading.Lock()

    def load(self) -> TokenSet | None:
        return self._tokens

    def save(self, tokens: TokenSet) -> None:
        self._tokens = tokens

    def clear(self) -> None:
        self._tokens = None

    def acquire(self, timeout: float) -> bool:
        if os.getpid() != self._pid:
            # A forked child: a lock some parent thread held must not stay held.
            self._pid, self._lock = os.getpid(), threading.Lock()
        return _acquire_thread_lock(self._lock, timeout)

    def release(self) -> None:
        self._lock.release()


class FileTokenStore:
    """Tokens in a JSON file (mode 0600), shared by every process that opens it.

    Writes are atomic (temp file, ``fsync``, ``rename``), so a crash leaves
    either the old or the new grant on disk, never half of one. The lock is a
    ``filelock`` on ``<path>.lock``, taken after an in-process lock, because
    one ``FileLock`` object is re-entrant and would not exclude our own threads.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path).expanduser()
        self._lock_path = str(self.path) + ".lock"
        self._make_locks()

    def _make_locks(self) -> None:
        # Called again in a forked child: a lock held by another thread at
        # fork time would otherwise stay held forever in the child.
        self._pid = os.getpid()
        self._thread_lock = threading.Lock()
        self._file_lock = FileLock(self._lock_path, thread_local=False, mode=0o600)

    def _ensure_dir(self) -> None:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)

    def load(self) -> TokenSet | None:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            return TokenSet.from_dict(json.loads(raw))
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring unreadable token file %s", self.path)
            return None

    def save(self, tokens: TokenSet) -> None:
        self._ensure_dir()
        data = json.dumps(tokens.to_dict(), separators=(",", ":")).encode()
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.")
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self._fsync_dir()

    def _fsync_dir(self) -> None:
        # The rename is durable only once the directory entry is on disk.
        try:
            dir_fd = os.open(self.path.parent, os.O_RDONLY)
        except OSError:
            return
        try:
            os.fsync(dir_fd)
        except OSError:
            pass
        finally:
            os.close(dir_fd)

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)

    def acquire(self, timeout: float) -> bool:
        if os.getpid() != self._pid:
            self._make_locks()
        start = time.monotonic()
        if not _acquire_thread_lock(self._thread_lock, timeout):
            return False
        self._ensure_dir()
        remaining = max(0.0, timeout - (time.monotonic() - start)) if timeout > 0 else 0.0
        try:
            self._file_lock.acquire(timeout=remaining, poll_interval=0.005)
        except Timeout:
            self._thread_lock.release()
            return False
        except BaseException:
            self._thread_lock.release()
            raise
        return True

    def release(self) -> None:
        try:
            self._file_lock.release()
        finally:
            self._thread_lock.release()
