"""The public names of silentauth.resource (httpx-style export test)."""

from __future__ import annotations

import importlib
import subprocess
import sys

import silentauth.resource as resource


def test_all_is_sorted_and_every_name_is_importable() -> None:
    assert resource.__all__ == sorted(resource.__all__)
    for name in resource.__all__:
        # Errors live in the one hierarchy of silentauth.errors and are re-exported.
        module = getattr(resource, name).__module__
        assert module.startswith(("silentauth.resource", "silentauth.errors")), name


def test_names_the_server_relies_on_stay_available() -> None:
    middleware = importlib.import_module("silentauth.resource.middleware")
    for name in ("BearerAuthMiddleware", "Principal", "require_auth"):
        assert hasattr(middleware, name)
    assert hasattr(
        importlib.import_module("silentauth.resource.verify"), "TokenAuthenticator"
    )


def test_fastapi_stays_an_optional_import() -> None:
    code = (
        "import sys; import silentauth.resource, silentauth.resource.jwks, "
        "silentauth.resource.backend, silentauth.resource.remote; "
        "sys.exit(1 if 'fastapi' in sys.modules else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
