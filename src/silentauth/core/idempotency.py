"""Idempotent refresh retries: the ``Idempotency-Key`` of a refresh request.

A refresh rotates the session (``c -> c + 1``) before its answer travels back.
When that answer is lost (a killed app, a closed lid, a dropped connection),
the client holds only token ``c`` and, after ``REUSE_GRACE``, presenting it is
indistinguishable from a thief's replay. A client that sends a random key with
the refresh (the ``Idempotency-Key`` header field of the IETF httpapi draft
"The Idempotency-Key HTTP Header Field") and keeps that key with the token
until an answer arrives can prove, on retry, that it is the one who made the
rotation: the store records a hash of the key with the swap, and a retry of
``c`` with the same key while ``c + 1`` is still unused gets ``c + 1`` again.

Without the key, or with another one, the rotation rule judges the late token
as before, so a thief who copied only the refresh token is still caught.

The key is a client-generated random value of at least 128 bits in base64url
(22 to 128 characters); the draft spells the header as a Structured Field
string (RFC 8941), so surrounding double quotes are accepted and removed.
"""

from __future__ import annotations

import hashlib
import hmac
import re

from silentauth.core.encoding import b64encode
from silentauth.errors import InvalidRequest

HEADER = "Idempotency-Key"
MIN_LENGTH = 22  # 22 base64url characters carry 132 bits
MAX_LENGTH = 128
_KEY = re.compile(rf"[A-Za-z0-9_-]{{{MIN_LENGTH},{MAX_LENGTH}}}")


def parse_key(raw: str | None) -> str | None:
    """The key of an ``Idempotency-Key`` header value; ``None`` when absent.

    Malformed (too short, too long, not base64url) -> :class:`InvalidRequest`
    (400 ``invalid_request``), before anything is rotated.
    """
    if raw is None:
        return None
    value = raw.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':  # pragma: no mutate - '""' fails the pattern, unquoted or not
        value = value[1:-1]
    if len(value) > MAX_LENGTH or _KEY.fullmatch(value) is None:
        raise InvalidRequest(
            f"The {HEADER} header must be {MIN_LENGTH}-{MAX_LENGTH} base64url characters (128 random bits or more)."
        )
    return value


def key_hash(key: str | None) -> str:
    """What the store keeps for ``key``: its SHA-256 (never the key); '' for none.

    A plain hash suffices: the key is random with at least 128 bits, so the
    hash cannot be inverted by guessing.
    """
    if not key:
        return ""
    return b64encode(hashlib.sha256(key.encode()).digest())


def same_key(stored: str, presented: str) -> bool:
    """Whether a request's key hash matches the stored one, in constant time.

    An empty side never matches: a rotation made without a key cannot be retried.
    """
    return bool(stored) and bool(presented) and hmac.compare_digest(stored.encode(), presented.encode())
