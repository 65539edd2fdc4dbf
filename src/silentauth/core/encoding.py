"""base64url without padding (RFC 7515 §2) and compact JSON."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any


def b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64decode(text: str | bytes) -> bytes:
    """Strict base64url: rejects padding, whitespace and foreign characters."""
    raw = text.encode("ascii") if isinstance(text, str) else text
    if b"=" in raw or len(raw) % 4 == 1:
        raise ValueError("not base64url")
    try:
        return base64.urlsafe_b64decode(raw + b"=" * (-len(raw) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValueError("not base64url") from exc


_compact = json.JSONEncoder(separators=(",", ":")).encode


def dumps(obj: Any) -> bytes:
    """Compact JSON (RFC 7515 needs no canonical order), one shared encoder."""
    return _compact(obj).encode()
