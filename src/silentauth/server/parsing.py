"""Request bodies, parsed defensively: size caps, strict UTF-8, no duplicates."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request

from silentauth.core.encoding import loads
from silentauth.errors import InvalidRequest, OAuthError

MAX_BODY = 64 * 1024


class PayloadTooLarge(OAuthError):
    error = "invalid_request"
    status_code = 413
    description = f"The request body exceeds {MAX_BODY} bytes."


def check_length(declared: str | None, limit: int = MAX_BODY) -> None:
    """Refuse a body by its ``Content-Length`` before reading a byte of it."""
    if declared is not None:
        if not (declared.isascii() and declared.isdigit()):
            raise InvalidRequest("Content-Length is not a number.")
        if int(declared) > limit:
            raise PayloadTooLarge()


async def read_body(request: Request, limit: int = MAX_BODY) -> bytes:
    check_length(request.headers.get("content-length"), limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge()
        chunks.append(chunk)
    return b"".join(chunks)


def parse_form(content_type: str, body: bytes) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body as a dict (RFC 6749 §3.2)."""
    if content_type.split(";")[0].strip().lower() != "application/x-www-form-urlencoded":
        raise InvalidRequest("Send the parameters as application/x-www-form-urlencoded.")
    try:
        if b"%" not in body and b"+" not in body and body.isascii():
            # Nothing to unquote (a refresh grant never has): split directly,
            # with parse_qsl's strict rule that every field has an "=".
            text = body.decode("ascii")
            pairs = []
            for field in text.split("&") if text else ():
                key, sep, value = field.partition("=")
                if not sep:
                    raise ValueError(field)
                pairs.append((key, value))
        else:
            text = body.decode("utf-8", "strict")
            pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text), errors="strict")
    except (UnicodeDecodeError, ValueError):
        raise InvalidRequest("The form body is not valid UTF-8 url-encoding.") from None
    form: dict[str, str] = {}
    for key, value in pairs:
        if key in form:
            # RFC 6749 §3.2: parameters must not be repeated.
            raise InvalidRequest(f"The parameter {key!r} is repeated.")
        if "\x00" in value:
            raise InvalidRequest(f"The parameter {key!r} contains a NUL byte.")
        form[key] = value
    return form


async def read_form(request: Request) -> dict[str, str]:
    return parse_form(request.headers.get("content-type", ""), await read_body(request))


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
