"""Body parsing: the form fast path agrees with ``parse_qsl``; JSON errors say what is wrong."""

from __future__ import annotations

from urllib.parse import parse_qsl

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from silentauth.errors import InvalidRequest
from silentauth.server.parsing import MAX_BODY, parse_form, remember_flag
from tests.conftest import Service

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


# --- JSON bodies as a browser client sees them (login) and the demo echo's larger cap ---


@pytest.mark.anyio
async def test_login_accepts_json_with_a_charset_parameter(service: Service) -> None:
    r = await service.client.post(
        "/auth/login",
        content=b'{"username": "alice", "password": "secret"}',
        headers={"content-type": "application/json; charset=utf-8"},
    )
    assert r.status_code == 200, r.text


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("body", "description"),
    [
        (b'{"username": "alice", "username": "bob"}', "The body is not valid UTF-8 JSON."),
        (b"\xff{}", "The body is not valid UTF-8 JSON."),
        (b'["alice", "secret"]', "The body must be a JSON object."),
    ],
)
async def test_login_names_what_is_wrong_with_a_json_body(
    service: Service, body: bytes, description: str
) -> None:
    r = await service.client.post("/auth/login", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 400
    assert r.json() == {"error": "invalid_request", "error_description": description}


@pytest.mark.anyio
async def test_echo_reads_bodies_past_the_default_cap_up_to_its_own(service: Service) -> None:
    token = (await service.password_grant())["access_token"]
    doc = {"body": "x" * (MAX_BODY + 1000)}
    r = await service.client.post("/api/echo", json=doc, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200 and r.json() == doc
    huge = {"body": "x" * (1024 * 1024)}
    r = await service.client.post("/api/echo", json=huge, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 413


@pytest.mark.parametrize("value", ["true", "1", "on", "yes", " TRUE ", "Yes", "ON"])
def test_remember_me_accepts_the_usual_spellings_of_yes(value: str) -> None:
    assert remember_flag(value) is True


@pytest.mark.parametrize("value", ["false", "0", "off", "no", " FALSE ", "No", "OFF"])
def test_remember_me_accepts_the_usual_spellings_of_no(value: str) -> None:
    assert remember_flag(value) is False


@pytest.mark.parametrize("value", [None, True, False])
def test_remember_me_passes_json_booleans_and_absence_through(value: bool | None) -> None:
    assert remember_flag(value) is value


@pytest.mark.parametrize("value", ["", "maybe", "2", "none", 1.5])
def test_remember_me_refuses_anything_else(value: object) -> None:
    with pytest.raises(InvalidRequest, match=r"^'remember' must be true or false\.$"):
        remember_flag(value)
