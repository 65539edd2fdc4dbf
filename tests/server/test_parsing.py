"""Body parsing: the form fast path agrees with ``parse_qsl``; JSON errors say what is wrong."""

from __future__ import annotations

import asyncio
from urllib.parse import parse_qsl

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.types import Message, Receive

from silentauth.errors import InvalidRequest, PayloadTooLarge
from silentauth.server.parsing import MAX_BODY, parse_form, receive_body, remember_flag
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


# --- the body reader as an ASGI server drives it ---


def replay(*messages: Message) -> Receive:
    """An ASGI ``receive`` that plays ``messages`` and then, like a server whose
    client has sent everything, waits: reading past the end hangs."""
    pending = list(messages)

    async def receive() -> Message:
        if pending:
            return pending.pop(0)
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    return receive


def read(receive: Receive, content_length: str | None = None, limit: int = MAX_BODY) -> bytes:
    return asyncio.run(asyncio.wait_for(receive_body(receive, content_length, limit), timeout=1))


def test_a_body_in_several_chunks_is_read_whole() -> None:
    receive = replay(
        {"type": "http.request", "body": b"grant_type=", "more_body": True},
        {"type": "http.request", "body": b"refresh_token", "more_body": True},
        {"type": "http.request", "body": b"&refresh_token=abc", "more_body": False},
    )
    assert parse_form(FORM, read(receive)) == {"grant_type": "refresh_token", "refresh_token": "abc"}


def test_a_message_without_more_body_is_the_last_one() -> None:
    # ASGI: "more_body" defaults to False; reading on would wait for bytes that never come.
    assert read(replay({"type": "http.request", "body": b"a=b"})) == b"a=b"


def test_a_message_without_a_body_key_is_an_empty_chunk() -> None:
    # ASGI: "body" defaults to b"".
    receive = replay(
        {"type": "http.request", "more_body": True},
        {"type": "http.request", "body": b"a=b", "more_body": False},
    )
    assert read(receive) == b"a=b"


def test_a_client_gone_before_any_byte_leaves_an_empty_body() -> None:
    assert read(replay({"type": "http.disconnect"})) == b""


def test_a_body_of_exactly_the_limit_is_accepted_declared_or_streamed() -> None:
    body = b"x" * 100
    assert read(replay({"type": "http.request", "body": body}), str(len(body)), limit=100) == body
    assert read(replay({"type": "http.request", "body": body}), None, limit=100) == body


@pytest.mark.parametrize("declared", [None, "101"])
def test_a_body_over_the_limit_is_refused_naming_the_limit(declared: str | None) -> None:
    receive = replay({"type": "http.request", "body": b"x" * 101})
    with pytest.raises(PayloadTooLarge) as caught:
        read(receive, declared, limit=100)
    assert caught.value.status_code == 413
    assert caught.value.error_description == "The request body exceeds 100 bytes."


@pytest.mark.parametrize("declared", ["", "abc", "-1", "1.5", "\u0661"])
def test_a_content_length_that_is_not_a_number_is_refused_saying_so(declared: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        read(replay({"type": "http.request", "body": b"a=b"}), declared)
    assert caught.value.status_code == 400
    assert caught.value.error_description == "Content-Length is not a number."


# --- form bodies: what a client sending a malformed one is told ---


def test_a_form_with_a_charset_parameter_is_accepted() -> None:
    assert parse_form(f"{FORM}; charset=UTF-8", b"a=b") == {"a": "b"}


@pytest.mark.parametrize("ctype", ["application/json", "", "text/plain; x=application/x-www-form-urlencoded"])
def test_a_form_in_another_content_type_is_refused_saying_what_to_send(ctype: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_form(ctype, b"a=b")
    assert caught.value.error_description == "Send the parameters as application/x-www-form-urlencoded."


@pytest.mark.parametrize("body", [b"a=%20&b", b"a=%ff", b"a=%C3%28", b"a=1&\xff=2", b"a+b"])
def test_a_malformed_url_encoded_form_is_refused_not_guessed_at(body: bytes) -> None:
    # The unquoting path is as strict as the fast path: a field without "=" or a
    # percent-escape that is not UTF-8 is an error, never a dropped or replaced character.
    with pytest.raises(InvalidRequest) as caught:
        parse_form(FORM, body)
    assert caught.value.error_description == "The form body is not valid UTF-8 url-encoding."


def test_repeated_resource_parameters_are_kept_in_order_with_the_rest_of_the_form() -> None:
    # RFC 8707 §2: each target resource is its own "resource" parameter.
    body = b"resource=https%3A%2F%2Fa.example&resource=https://b.example&resource=urn:c&grant_type=password"
    assert parse_form(FORM, body) == {
        "resource": "https://a.example https://b.example urn:c",
        "grant_type": "password",
    }


def test_a_repeated_resource_holding_a_space_is_refused() -> None:
    # Joined with spaces, "a b" would read as two resources: refuse rather than split it.
    with pytest.raises(InvalidRequest) as caught:
        parse_form(FORM, b"resource=urn:a&resource=urn:b+urn:c")
    assert caught.value.error_description == "The parameter 'resource' is repeated."


def test_a_value_with_a_nul_byte_is_refused_naming_the_parameter() -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_form(FORM, b"username=alice%00admin")
    assert caught.value.error_description == "The parameter 'username' contains a NUL byte."
