"""The public surface of silentauth.client, and what it must not drag in."""

from __future__ import annotations

import subprocess
import sys

import silentauth.client as client
from silentauth import errors


def test_all_is_sorted_and_every_name_is_importable() -> None:
    assert client.__all__ == sorted(client.__all__)
    for name in client.__all__:
        assert getattr(client, name) is not None
    for name in ("TokenAuth", "MemoryTokenStore", "FileTokenStore", "SessionExpired", "StepUpRequired"):
        assert name in client.__all__  # the names the README's client examples import


def test_client_errors_are_the_shared_hierarchy() -> None:
    assert client.SessionExpired is errors.SessionExpired
    assert client.StepUpRequired is errors.StepUpRequired
    assert client.RefreshFailed is errors.RefreshFailed
    assert client.BodyNotReplayable is errors.BodyNotReplayable
    assert issubclass(client.LoginFailed, errors.ClientError)


def test_client_imports_no_server_side_code() -> None:
    code = (
        "import sys, silentauth.client, httpx\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('starlette', 'cryptography', 'uvicorn', 'requests', 'argon2') "
        "or m.startswith(('silentauth.server', 'silentauth.core', 'silentauth.stores', 'silentauth.resource')))\n"
        "print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"
