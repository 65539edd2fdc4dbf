"""One API, three frameworks: ``/open`` and ``/protected`` on the same server.

Each app serves the same JSON from both routes; ``/protected`` sits behind
silentauth's adapter for its framework, built the way the README shows
(``from_issuer``: keys from the issuer's JWKS, its revocation feed followed).
``SILENTAUTH_ISSUER`` names the issuer. :mod:`bench.resource` drives them.
"""

from __future__ import annotations

import os

ISSUER_ENV = "SILENTAUTH_ISSUER"
PAYLOAD = {"ok": True, "items": [1, 2, 3]}


def issuer() -> str:
    """The issuer the app trusts (set by the benchmark)."""
    return os.environ[ISSUER_ENV]
