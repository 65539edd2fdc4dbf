"""Property tests on request-body parsing (``silentauth.server.parsing``).

Whatever bytes and headers arrive, the parsers return a value or raise an
:class:`OAuthError` (rendered as a 4xx); nothing else may escape, because
anything else becomes a 500. The size cap is tested through the whole app
too, on the token endpoint's bare ASGI path (the refresh hot path) and on a
Starlette route, so a reader without the cap on either path fails here.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from starlette.requests import Request
from starlette.types import ASGIApp, Message

from silentauth.errors import InvalidRequest, OAuthError, PayloadTooLarge
from silentauth.server.app import create_app
from silentauth.server.parsing import (
    MAX_BODY,
    read_body,
    read_form,
    read_json_object,
)
from tests.conftest import FAST_PASSWORDS, make_settings

FORM = "application/x-www-form-urlencoded"


def request(body: bytes | list[bytes], headers: dict[str, bytes] | None = None) -> Request:
    """A Starlette request whose body arrives in the given chunks."""
    chunks = [body] if isinstance(body, bytes) else list(body)
    raw = [(k.lower().encode("latin-1"), v) for k, v in (headers or {}).items()]

    async def receive() -> Message:
        if chunks:
            return {"type": "http.request", "body": chunks.pop(0), "more_body": bool(chunks)}
        return {"type": "http.disconnect"}

    scope = {"type": "http", "method": "POST", "path": "/", "query_string": b"", "headers": raw}
    return Request(scope, receive)


def outcome(parser: Callable[[Request], Awaitable[Any]], req: Request) -> Any:
    """The parsed value, or the OAuthError raised; any other exception propagates."""
    try:
        return asyncio.run(parser(req))
    except OAuthError as exc:
        assert 400 <= exc.status_code < 500
        return exc


@settings(max_examples=300)
@given(st.binary(max_size=2048))
@example(b"a=%ff")  # percent-encoded non-UTF-8
@example(b"\xff\xfe=1")
@example(b"a=1&a=2")
@example(b"a=%00")
@example(b"&&&")
@example(b"=")
def test_any_form_body_parses_or_is_refused_cleanly(body: bytes) -> None:
    result = outcome(read_form, request(body, {"content-type": FORM.encode()}))
    if not isinstance(result, OAuthError):
        assert all(isinstance(k, str) and isinstance(v, str) and "\x00" not in v for k, v in result.items())


keys = st.text(min_size=1, max_size=20).filter(lambda s: "\x00" not in s)
values = st.text(max_size=50).filter(lambda s: "\x00" not in s)


@given(st.dictionaries(keys, values, max_size=8))
def test_url_encoded_forms_round_trip(params: dict[str, str]) -> None:
    body = urlencode(params).encode()
    assert outcome(read_form, request(body, {"content-type": FORM.encode()})) == params


@given(keys, values, values)
def test_repeated_form_parameters_are_refused(key: str, a: str, b: str) -> None:
    # RFC 6749 §3.2: parameter pollution ("grant_type" twice) must not pick a winner.
    body = urlencode([(key, a), (key, b)]).encode()
    result = outcome(read_form, request(body, {"content-type": FORM.encode()}))
    assert isinstance(result, InvalidRequest)


@given(st.sampled_from(["application/json", "text/plain", "multipart/form-data", "", "x" * 300]))
def test_forms_in_another_content_type_are_refused(ctype: str) -> None:
    result = outcome(read_form, request(b"grant_type=password", {"content-type": ctype.encode()}))
    assert isinstance(result, InvalidRequest)


@settings(max_examples=300)
@given(st.binary(max_size=2048))
@example(b"[" * 50_000)  # nesting deeper than the recursion limit
@example(b'"\xff"')
@example(b"1" * 10_000)  # an integer longer than int() accepts
@example(b"\xef\xbb\xbf{}")  # a UTF-8 BOM
def test_any_json_body_parses_or_is_refused_cleanly(body: bytes) -> None:
    result = outcome(read_json_object, request(body))
    assert isinstance(result, dict | OAuthError)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)


@given(st.dictionaries(st.text(max_size=10), json_values, max_size=6))
def test_json_objects_round_trip(obj: dict[str, Any]) -> None:
    body = json.dumps(obj).encode()
    assert outcome(read_json_object, request(body)) == obj


@settings(max_examples=200)
@given(st.text(alphabet=st.characters(codec="ascii"), max_size=30))
@example("-1")
@example("+5")
@example("1e3")
@example(" 5")
@example("99999999999999999999999999")
def test_any_ascii_content_length_is_handled(declared: str) -> None:
    # h11 and httptools pass only ASCII header bytes that they validated;
    # the parser must still turn any of them into a value or a 4xx.
    req = request(b"abc", {"content-length": declared.encode()})
    outcome(read_body, req)


@given(st.integers(1, 64), st.integers(MAX_BODY + 1, 4 * MAX_BODY))
def test_streamed_bodies_over_the_cap_are_refused_without_content_length(parts: int, size: int) -> None:
    # A chunked upload declares no length; the cap must hold while streaming.
    chunk = b"x" * (size // parts + 1)
    result = outcome(read_body, request([chunk] * parts))
    assert isinstance(result, PayloadTooLarge)


def test_declared_oversize_body_is_refused_before_reading() -> None:
    reads = 0

    async def receive() -> Message:
        nonlocal reads
        reads += 1
        return {"type": "http.request", "body": b"x", "more_body": True}

    scope = {
        "type": "http", "method": "POST", "path": "/", "query_string": b"",
        "headers": [(b"content-length", str(100 * MAX_BODY).encode())],
    }
    with pytest.raises(PayloadTooLarge):
        asyncio.run(read_body(Request(scope, receive)))
    assert reads == 0


def post(
    app: ASGIApp,
    path: str,
    chunks: list[bytes],
    headers: list[tuple[bytes, bytes]],
    hang_up: bool = False,
) -> tuple[int, int]:
    """POST ``chunks`` through the whole app: (status, number of body reads).

    With ``hang_up`` the last chunk promises more, and the client disconnects.
    """
    pending = list(chunks)
    reads = 0
    status = 0

    async def receive() -> Message:
        nonlocal reads
        reads += 1
        if pending:
            return {"type": "http.request", "body": pending.pop(0), "more_body": bool(pending) or hang_up}
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
        "root_path": "", "client": ("127.0.0.1", 50000), "server": ("testserver", 80),
        "headers": [(b"host", b"testserver"), (b"content-type", FORM.encode()), *headers],
    }
    asyncio.run(app(scope, receive, send))
    return status, reads


# /auth/token is answered by the bare ASGI endpoint before the router;
# /auth/revoke is a Starlette route reading through read_form.
CAPPED_PATHS = ["/auth/token", "/auth/revoke"]


@pytest.mark.parametrize("path", CAPPED_PATHS)
def test_the_size_cap_holds_on_every_path(tmp_path: Path, path: str) -> None:
    # The app is not started: a body the cap refuses never reaches the store,
    # and one it lets through ("x" * n has no "=") fails form parsing with 400.
    app = create_app(make_settings(tmp_path), passwords=FAST_PASSWORDS, background=False)

    @settings(max_examples=60, deadline=None)
    @given(
        size=st.integers(1, 3 * MAX_BODY),
        parts=st.integers(1, 16),
        declared=st.sampled_from(["exact", "absent", "understated"]),
    )
    @example(size=MAX_BODY, parts=1, declared="absent")
    @example(size=MAX_BODY + 1, parts=1, declared="absent")
    @example(size=MAX_BODY + 1, parts=1, declared="exact")
    @example(size=MAX_BODY + 1, parts=2, declared="understated")
    def run(size: int, parts: int, declared: str) -> None:
        step = -(-size // parts)
        body = b"x" * size
        chunks = [body[i : i + step] for i in range(0, size, step)]
        headers = {
            "exact": [(b"content-length", str(size).encode())],
            "absent": [],
            # A length the bytes then outgrow: only the streaming count can catch it.
            "understated": [(b"content-length", b"10")],
        }[declared]
        status, reads = post(app, path, chunks, headers)
        if size <= MAX_BODY:
            assert status == 400
        else:
            assert status == 413
            if declared == "exact":
                assert reads == 0  # refused by Content-Length, before the first read

    run()


@pytest.mark.parametrize("path", CAPPED_PATHS)
def test_a_client_gone_mid_body_is_a_4xx_not_a_500(tmp_path: Path, path: str) -> None:
    app = create_app(make_settings(tmp_path), passwords=FAST_PASSWORDS, background=False)
    status, _ = post(app, path, [b"grant_type=refresh_token&refresh"], [], hang_up=True)
    assert status == 400
