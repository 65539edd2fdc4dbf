"""silentauth: seamless token refresh, end to end.

The package root carries only metadata and the error hierarchy, so that
``pip install silentauth`` (the client alone) imports without server
dependencies. The parts live in sub-packages:

- :mod:`silentauth.core`: pure token, session and rotation logic.
- :mod:`silentauth.stores`: SQLite, PostgreSQL and Redis persistence.
- :mod:`silentauth.server`: the Starlette token service.
- :mod:`silentauth.resource`: access-token verification for any ASGI app.
- :mod:`silentauth.client`: the httpx / requests client.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
