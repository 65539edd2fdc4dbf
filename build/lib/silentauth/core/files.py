"""Files at rest that hold secrets: created owner-only, checked at start.

The SQLite database holds Argon2 password hashes and encrypted signing keys;
the secret key file holds the master secret. Other local users must not read
either. New files are created 0600. An existing file that group or others may
access is reported with the exact fix but left as it is: its mode may be the
operator's choice (a backup group), and refusing to start would turn an
upgrade into an outage, while the warning repeats at every start until the
mode is fixed.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger("silentauth.files")

PRIVATE_MODE = 0o600


def create_private(path: str | os.PathLike[str]) -> bool:
    """Create ``path`` empty with mode 0600 unless it exists; True if created.

    The mode is given to ``open`` itself, so the file never exists with a
    wider one; ``fchmod`` then undoes a umask that would strip the owner's
    own write bit. ``O_EXCL`` leaves a file someone else created untouched.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_MODE)
    except FileExistsError:
        return False
    try:
        if os.name == "posix":
            os.fchmod(fd, PRIVATE_MODE)
    finally:
        os.close(fd)
    return True


def exposed_mode(path: str | os.PathLike[str]) -> int | None:
    """The permission bits of ``path`` if group or others have any access, else None."""
    if os.name != "posix":
        return None  # no POSIX modes to judge (Windows ACLs are another matter)
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        return None
    return mode if mode & 0o077 else None


def warn_if_exposed(path: str | os.PathLike[str], what: str) -> bool:
    """Log one warning line naming ``path`` and the fix if others may access it."""
    mode = exposed_mode(path)
    if mode is None:
        return False
    name = str(Path(path))
    log.warning(
        "silentauth: %s %s is accessible to group or others (mode %04o); fix: chmod 600 %s",
        what,
        name,
        mode,
        name,
    )
    return True
