"""Request bodies, parsed defensively: size caps, strict UTF-8, no duplicates.

:func:`receive_body` is the one body reader: the token endpoint's bare ASGI
path calls it with the ``receive`` callable, Starlette routes through
:func:`read_body`. There is one size cap to keep, and the fuzz tests drive it
through both paths.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.types import Receive

from silentauth.core.encoding import loads
from silentauth.errors import InvalidRequest, PayloadTooLarge, UnsupportedMediaType

MAX_BODY = 64 * 1024
REPEATABLE = frozenset({"resource"})


def require_json_type(content_type: str) -> None:
    """Refuse any ``Content-Type`` but ``application/json`` (parameters such as charset aside)."""
    if content_type.split(";")[0].strip().lower() != "application/json":
        raise UnsupportedMediaType()


def check_length(declared: str | None, limit: int = MAX_BODY) -> None:
    """Refuse a body by its ``Content-Length`` before reading a byte of it."""
    if declared is not None:
        if not (declared.isascii() and declared.isdigit()):
            raise InvalidRequest("Content-Length is not a number.")
        if int(declared) > limit:
            raise PayloadTooLarge(limit)


async def receive_body(
    receive: Receive, content_length: str | None, limit: int = MAX_BODY
) -> bytes:
    """The body of an ASGI request, at most ``limit`` bytes, else :class:`PayloadTooLarge`.

    A declared ``Content-Length`` over the limit is refused before the first
    read; a chunked body (no length) or one that outgrows its declared length
    is refused as soon as the bytes received pass the limit.
    """
    check_length(content_length, limit)
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break  # the client went away; the truncated body fails validation
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):  # pragma: no mutate - None or no default is as falsy as False
            break
    # One chunk is the usual case (a small form): no copy.
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)  # pragma: no mutate - joining one chunk only copies it


async def read_body(request: Request, limit: int = MAX_BODY) -> bytes:
    """:func:`receive_body` for a Starlette request.

    It reads the ASGI stream itself (not ``request.stream()``), so a client
    that hangs up mid-body gets the 400 of a truncated body rather than a
    ``ClientDisconnect`` turned 500; nothing may have read the body before.
    """
    length = request.headers.get("content-length")  # pragma: no mutate - Starlette's headers ignore case
    return await receive_body(request.receive, length, limit)


def parse_form(content_type: str, body: bytes) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body as a dict (RFC 6749 §3.2)."""
    if content_type.split(";")[0].strip().lower() != "application/x-www-form-urlencoded":
        raise InvalidRequest("Send the parameters as application/x-www-form-urlencoded.")
    try:
        if b"%" not in body and b"+" not in body and body.isascii():
            # Nothing to unquote (a refresh grant never has): split directly,
            # with parse_qsl's strict rule that every field has an "=".
            text = body.decode("ascii")  # pragma: no mutate - codec names ignore case
            pairs = []
            for field in text.split("&") if text else ():
                key, sep, value = field.partition("=")
                if not sep:
                    raise ValueError(field)  # pragma: no mutate - caught below; its text is never shown
                pairs.append((key, value))
        else:
            text = body.decode("utf-8", "strict")  # pragma: no mutate - codec names ignore case; "strict" is the default
            pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text), errors="strict")
    except (UnicodeDecodeError, ValueError):
        raise InvalidRequest("The form body is not valid UTF-8 url-encoding.") from None
    form: dict[str, str] = {}
    for key, value in pairs:
        if key in form:
            if key in REPEATABLE and " " not in value:
                # RFC 8707 §2: one resource per parameter, repeated; kept space-separated
                # (a URI holds no space, so the join is unambiguous).
                form[key] += " " + value
                continue
            # RFC 6749 §3.2: parameters must not be repeated.
            raise InvalidRequest(f"The parameter {key!r} is repeated.")
        if "\x00" in value:
            raise InvalidRequest(f"The parameter {key!r} contains a NUL byte.")
        form[key] = value
    return form


async def read_form(request: Request) -> dict[str, str]:
    content_type = request.headers.get("content-type", "")  # pragma: no mutate - Starlette's headers ignore case
    return parse_form(content_type, await read_body(request))


async def read_json(request: Request, limit: int = MAX_BODY) -> Any:
    """Strict RFC 8259 JSON: UTF-8, no NaN/Infinity, no duplicate keys, no lone surrogates."""
    body = await read_body(request, limit)
    try:
        data = loads(body)
    except ValueError:
        raise InvalidRequest("The body is not valid UTF-8 JSON.") from None
    return data


async def read_json_object(request: Request) -> dict[str, Any]:
    data = await read_json(request)
    if not isinstance(data, dict):
        raise InvalidRequest("The body must be a JSON object.")
    return data


def require(params: dict[str, Any], name: str) -> str:
    value = params.get(name)
    if not isinstance(value, str) or value == "":
        raise InvalidRequest(f"The parameter {name!r} is required and must be a string.")
    return value


def remember_flag(value: object) -> bool | None:
    """The "remember me" choice: JSON true/false or form ``true``/``false``; absent is ``None``."""
    if value is None or isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "on", "yes"):
        return True
    if text in ("false", "0", "off", "no"):
        return False
    raise InvalidRequest("'remember' must be true or false.")
