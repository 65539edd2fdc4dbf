"""Differential fuzzing: any token request gets the same bytes from both paths.

Hypothesis builds ``POST /auth/token`` requests (form fields, raw bodies, header
fields a client or a proxy may send, a CORS origin) and sends each to the same
server twice: once on the socket whose connections the protocol answers itself
(:class:`TokenProtocol`), once on the socket that takes the ASGI stack. The two
answers must be identical but for the ``date`` line, and the protocol's path
must have served the first. Nothing here can log in (no valid password, no
valid refresh token), so every answer is deterministic.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.server.test_token_protocol import Served, both, serve

FIELDS = ["grant_type", "refresh_token", "username", "password", "scope", "resource", "client_id", "client_secret", "remember"]
GRANTS = st.sampled_from(["refresh_token", "password", "client_credentials", "", "REFRESH_TOKEN"])
TYPES = st.sampled_from(
    ["application/x-www-form-urlencoded", "application/x-www-form-urlencoded; charset=UTF-8", "APPLICATION/X-WWW-FORM-URLENCODED", "application/json", "text/plain", ""]
)
# Header values httptools accepts: visible ASCII and spaces (it refuses control bytes).
VALUES = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60)
HEADERS = st.lists(
    st.tuples(
        st.sampled_from(
            ["Authorization", "Idempotency-Key", "User-Agent", "Origin", "X-Forwarded-For", "Forwarded", "Cookie", "X-CSRF-Token"]
        ),
        VALUES,
    ),
    max_size=4,
)


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    if draw(st.booleans()):
        return draw(st.binary(max_size=200))
    pairs = draw(st.lists(st.tuples(st.sampled_from(FIELDS), st.text(max_size=40)), max_size=6))
    if draw(st.booleans()):
        pairs.insert(0, ("grant_type", draw(GRANTS)))
    # Nothing may log in: the user's password is "pw".
    pairs = [(k, "not-the-password" if k == "password" else v) for k, v in pairs]
    return urlencode(pairs).encode()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp: Path = tmp_path_factory.mktemp("fuzz-token-protocol")
    with serve(tmp, cors_origins=("https://app.example",), trusted_proxies=("127.0.0.1/32",)) as s:
        yield s


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=bodies(), content_type=TYPES, headers=HEADERS)
def test_both_paths_answer_any_token_request_alike(
    served: Served, body: bytes, content_type: str, headers: list[tuple[str, str]]
) -> None:
    head = b"POST /auth/token HTTP/1.1\r\nHost: x\r\n"
    if content_type:
        head += b"Content-Type: " + content_type.encode() + b"\r\n"
    for name, value in headers:
        head += name.encode() + b": " + value.encode() + b"\r\n"
    request = head + b"Content-Length: %d\r\n\r\n" % len(body) + body
    status, _, _ = both(served, request)
    assert 400 <= status < 500
