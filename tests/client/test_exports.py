"""The public surface of silentauth.client, and what it must not drag in."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import silentauth.client as client
from silentauth import errors


def _classes(package: str) -> dict[str, str]:
    """Each public class defined in ``package``'s modules, by name -> defining module.

    Read from the source, not imported: adapters such as the Django one cannot be
    imported without their framework configured.
    """
    found: dict[str, str] = {}
    root = Path(importlib.import_module(package).__path__[0])
    for path in sorted(root.rglob("*.py")):
        module = ".".join([package, *path.relative_to(root).with_suffix("").parts])
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                found[node.name] = module
    return found


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


def test_no_client_class_shares_a_name_with_a_server_side_class() -> None:
    # One name, one thing: a reader (or an import completer) must not confuse the
    # client's token-endpoint client with the server's token endpoint.
    ours = _classes("silentauth.client")
    for package in ("silentauth.server", "silentauth.core", "silentauth.resource", "silentauth.stores"):
        theirs = _classes(package)
        clashes = {n: (ours[n], theirs[n]) for n in ours.keys() & theirs.keys()}
        assert clashes == {}, clashes
