"""The token service as an app called in-process, for the benches that time its stages.

:mod:`bench.breakdown` and :mod:`bench.protocol_refresh` call the app (or its
HTTP protocol) directly, without a server process or a network in the way. Both
need the same service: a throwaway SQLite file, no rate limits (the benches
refresh far faster than a client may), a cheap Argon2 hash (they time refresh,
not password hashing) and no background tasks (nothing else using the CPU).
"""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette

from silentauth.core.passwords import Passwords
from silentauth.server.app import create_app
from silentauth.settings import Settings


def bench_app(directory: Path) -> Starlette:
    """The service app on a new SQLite file in ``directory``; run its lifespan to use it."""
    settings = Settings(
        database_url=f"sqlite:///{directory / 'b.db'}",
        secret_key="bench-only-silentauth-secret-key-0123456789abcdef",
        rate_limit_login=None,
        rate_limit_refresh=None,
    )
    return create_app(settings, passwords=Passwords(time_cost=1, memory_cost=8), background=False)
