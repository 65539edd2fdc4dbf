"""Files that hold secrets: created owner-only whatever the umask, reported when exposed."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import pytest

from silentauth.core.files import (
    PRIVATE_MODE,
    create_private,
    exposed_mode,
    warn_if_exposed,
)
from tests.conftest import mode

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")


@pytest.mark.parametrize("mask", [0o000, 0o022, 0o277], ids=["umask000", "umask022", "umask277"])
def test_a_new_file_is_empty_and_0600_whatever_the_umask(tmp_path: Path, umask: None, mask: int) -> None:
    # 0277 would also strip the owner's write bit: the service could not write its own key.
    os.umask(mask)
    path = tmp_path / "secret.key"
    assert create_private(path) is True
    assert mode(path) == PRIVATE_MODE == 0o600
    assert path.read_bytes() == b""


def test_an_existing_file_is_left_as_it_is(tmp_path: Path) -> None:
    path = tmp_path / "secret.key"
    path.write_bytes(b"the operator's key")
    path.chmod(0o640)  # maybe a backup group's choice
    assert create_private(path) is False
    assert path.read_bytes() == b"the operator's key" and mode(path) == 0o640


@pytest.mark.parametrize("bits", [0o640, 0o604, 0o660, 0o601, 0o610, 0o777])
def test_any_access_for_group_or_others_is_exposed(tmp_path: Path, bits: int) -> None:
    path = tmp_path / "auth.db"
    path.touch()
    path.chmod(bits)
    assert exposed_mode(path) == bits


@pytest.mark.parametrize("bits", [0o600, 0o400, 0o700])
def test_owner_only_is_not_exposed(tmp_path: Path, bits: int) -> None:
    path = tmp_path / "auth.db"
    path.touch()
    path.chmod(bits)
    assert exposed_mode(path) is None


def test_a_missing_file_is_not_exposed(tmp_path: Path) -> None:
    assert exposed_mode(tmp_path / "absent.db") is None


def test_an_exposed_file_gets_one_warning_with_the_fix(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="silentauth.files")
    private, shared = tmp_path / "private.db", tmp_path / "shared.db"
    create_private(private)
    shared.touch()
    shared.chmod(0o644)
    assert warn_if_exposed(private, "database") is False
    assert warn_if_exposed(tmp_path / "absent.db", "database") is False
    assert caplog.records == []
    assert warn_if_exposed(str(shared), "secret key file") is True
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (
            logging.WARNING,
            f"silentauth: secret key file {shared} is accessible to group or others (mode 0644); "
            f"fix: chmod 600 {shared}",
        )
    ]


def test_the_new_file_never_exists_with_a_wider_mode(
    tmp_path: Path, umask: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another local user could open a file created wider and keep the descriptor
    # after a later chmod: the mode is read at the one moment between the two calls.
    os.umask(0)
    seen: list[int] = []
    fchmod = os.fchmod

    def observed_fchmod(fd: int, mode: int) -> None:
        seen.append(stat.S_IMODE(os.fstat(fd).st_mode))
        fchmod(fd, mode)

    monkeypatch.setattr(os, "fchmod", observed_fchmod)
    assert create_private(tmp_path / "secret.key") is True
    assert seen == [0o600]
