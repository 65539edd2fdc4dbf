"""base64url without padding (RFC 7515 §2), compact JSON out, strict JSON in.

Both decoders accept exactly one spelling of each value. A lenient decoder
lets anyone derive many strings from one token (padding, the ``+/``
alphabet, non-zero spare bits, stray characters), which defeats an
exact-string denylist and fills a per-string cache; a lenient JSON parser
lets two parsers read one document differently (duplicate keys) or lets a
claim be ``NaN``.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Callable
from json.encoder import c_make_encoder, encode_basestring_ascii  # type: ignore[attr-defined]
from typing import Any

# RFC 4648 §5 alphabet, nothing else: no "=", no "+/", no whitespace.
_B64URL = re.compile(r"[A-Za-z0-9_-]*")
_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_VALUE = {c: i for i, c in enumerate(_ALPHABET)}
# Bits of the last character that carry no data, by length mod 4 (RFC 4648 §3.5).
_SPARE_MASK = {2: 0b1111, 3: 0b11}


_URLSAFE = bytes.maketrans(b"+/", b"-_")


def b64encode(data: bytes) -> str:
    """base64url without padding (RFC 7515 §2)."""
    # binascii directly: base64.urlsafe_b64encode is two Python calls around the
    # same two C calls, and a refresh encodes five segments.
    encoded = binascii.b2a_base64(data, newline=False).translate(_URLSAFE).rstrip(b"=")
    return encoded.decode("ascii")  # pragma: no mutate - codec names ignore case


def b64decode(text: str | bytes) -> bytes:
    """Canonical base64url only: ``b64encode(b64decode(s)) == s`` or ValueError.

    Refuses padding, whitespace, characters outside ``A-Z a-z 0-9 - _``,
    a length of 1 mod 4 and non-zero spare bits in the last character.
    The error texts are diagnostics (every caller turns them into its own
    error), hence no mutation of them.
    """
    try:
        s = text.decode("ascii") if isinstance(text, bytes) else text  # pragma: no mutate - codec names ignore case
    except UnicodeDecodeError:
        raise ValueError("not base64url") from None  # pragma: no mutate
    if not _B64URL.fullmatch(s) or len(s) % 4 == 1:
        raise ValueError("not base64url")  # pragma: no mutate
    mask = _SPARE_MASK.get(len(s) % 4)
    if mask is not None and _VALUE[s[-1]] & mask:
        raise ValueError("not canonical base64url (spare bits set)")  # pragma: no mutate
    try:
        # Python's decoder ignores surplus padding, so only too little would show.
        return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))  # pragma: no mutate
    except (binascii.Error, ValueError) as exc:  # pragma: no cover - excluded above
        raise ValueError("not base64url") from exc  # pragma: no mutate


_encoder = json.JSONEncoder(separators=(",", ":"))
# The C encoder of that JSONEncoder, made once. JSONEncoder.encode makes a new
# one per call (with a fresh dict of the objects being encoded, for its cycle
# check), which costs as much as encoding a token response itself. Without
# that dict, a cycle ends in RecursionError instead of ValueError; no caller
# passes one (the application's claims pass check_claims' json.dumps first).
_c_encode = (
    None
    if c_make_encoder is None  # pragma: no cover - CPython always has the accelerator
    else c_make_encoder(None, _encoder.default, encode_basestring_ascii, None, ":", ",", False, False, True)
)


# A JSON string with its quotes, ASCII only: the C function ``json.dumps``
# (``ensure_ascii``) and :func:`dumps` encode every string through. A template
# that writes its strings through it gives the bytes ``dumps`` would.
json_string: Callable[[str], str] = encode_basestring_ascii


def dumps(obj: Any) -> bytes:
    """Compact JSON (RFC 7515 needs no canonical order), ASCII, one shared encoder."""
    if _c_encode is None:  # pragma: no cover - see above
        return _encoder.encode(obj).encode()  # pragma: no mutate - only without the C encoder (not CPython)
    # CPython's C encoder returns a 1-tuple and reads the level only with an indent:
    # the separator and the level are equivalent mutants.
    return "".join(_c_encode(obj, 0)).encode()  # pragma: no mutate


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        # {"sub": "mallory", "sub": "alice"}: parsers disagree on which one wins.
        raise ValueError("duplicate key")  # pragma: no mutate - diagnostic text; callers replace it
    return obj


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # pragma: no mutate - diagnostic text; callers replace it


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        # 1e400 parses to inf: an "exp" that never comes.
        raise ValueError(f"{text} is out of range")  # pragma: no mutate - diagnostic text; callers replace it
    return value


def loads(data: str | bytes) -> Any:
    """Strict RFC 8259 JSON: UTF-8, no NaN/Infinity (nor numbers that overflow to
    them), no duplicate keys, no lone surrogates. Raises ValueError."""
    try:
        text = data.decode("utf-8", "strict") if isinstance(data, bytes) else data  # pragma: no mutate - "strict" is the default
        value = json.loads(
            text,
            object_pairs_hook=_no_duplicates,
            parse_constant=_no_constant,
            parse_float=_finite_float,
        )
        if "\\u" in text:
            # "\ud800" escapes decode to lone surrogates, which no UTF-8 output can
            # carry; without any "\u" escape strict UTF-8 input cannot contain one.
            json.dumps(value, ensure_ascii=False).encode("utf-8")  # pragma: no mutate - codec case; None is False
        elif isinstance(data, str):
            text.encode("utf-8")  # pragma: no mutate - codec names ignore case
    except (UnicodeError, ValueError, RecursionError) as exc:
        raise ValueError(f"not strict JSON: {exc}") from None  # pragma: no mutate - diagnostic text; callers replace it
    return value
