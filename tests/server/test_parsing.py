"""The form parser's fast path agrees with ``urllib.parse.parse_qsl`` exactly."""

from __future__ import annotations

from urllib.parse import parse_qsl

from hypothesis import given, settings
from hypothesis import strategies as st

from silentauth.errors import InvalidRequest
from silentauth.server.parsing import parse_form

FORM = "application/x-www-form-urlencoded"


@settings(max_examples=3000, deadline=None)
@given(st.text(alphabet="ab=&_-.~x0", max_size=16))
def test_fast_path_matches_parse_qsl_strict(body: str) -> None:
    try:
        pairs = parse_qsl(body, keep_blank_values=True, strict_parsing=bool(body))
    except ValueError:
        pairs = None
    try:
        got: dict[str, str] | None = parse_form(FORM, body.encode())
    except InvalidRequest:
        got = None
    if pairs is None or len(dict(pairs)) != len(pairs):
        assert got is None  # malformed, or a repeated parameter (RFC 6749 §3.2)
    else:
        assert got == dict(pairs)


def test_encoded_bodies_take_the_unquoting_path() -> None:
    assert parse_form(FORM, b"username=a%20b&password=c+d") == {"username": "a b", "password": "c d"}
