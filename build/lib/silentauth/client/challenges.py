"""How servers say no: Bearer challenges and token-endpoint error bodies.

Pure parsing, no I/O: a 401's ``WWW-Authenticate`` (RFC 6750 §3, with the
step-up ``max_age`` of RFC 9470) and the ``error`` code of an RFC 6749 §5.2
error response.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

_AUTH_PARAM = re.compile(r'([A-Za-z0-9_\-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^,\s]*)')


@dataclass(frozen=True)
class Challenge:
    """A parsed ``WWW-Authenticate: Bearer …`` header (RFC 6750 §3, RFC 9470)."""

    error: str | None
    max_age: int | None


def parse_challenge(header: str | None) -> Challenge | None:
    """The Bearer challenge of a 401, or ``None`` if there is none."""
    if not header:
        return None
    scheme, _, rest = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    params: dict[str, str] = {}
    for name, raw in _AUTH_PARAM.findall(rest):
        value = raw[1:-1].replace('\\"', '"') if raw.startswith('"') else raw
        params.setdefault(name.lower(), value)
    max_age = params.get("max_age", "")
    return Challenge(params.get("error"), int(max_age) if max_age.isdigit() else None)


def oauth_error(body: bytes) -> str | None:
    """The ``error`` code of an RFC 6749 §5.2 error body, if it has one."""
    try:
        data = json.loads(body)
    except ValueError:
        return None
    error = data.get("error") if isinstance(data, dict) else None
    return error if isinstance(error, str) else None
