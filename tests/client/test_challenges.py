"""Parsing how servers refuse: Bearer challenges and token-endpoint error bodies."""

from __future__ import annotations

from silentauth.client.challenges import oauth_error, parse_challenge


def test_step_up_challenge_carries_max_age() -> None:
    header = 'Bearer error="insufficient_user_authentication", error_description="a, b", max_age=300'
    challenge = parse_challenge(header)
    assert challenge is not None
    assert challenge.error == "insufficient_user_authentication" and challenge.max_age == 300


def test_challenges_that_are_not_bearer_or_have_no_error() -> None:
    assert parse_challenge('Basic realm="x"') is None
    assert parse_challenge(None) is None
    bare = parse_challenge("Bearer")
    assert bare is not None and bare.error is None and bare.max_age is None
    assert parse_challenge('Bearer realm="api", error=invalid_token') == parse_challenge(
        'Bearer error="invalid_token"'
    )


def test_oauth_error_reads_only_a_string_error_code() -> None:
    assert oauth_error(b'{"error": "invalid_grant", "error_description": "x"}') == "invalid_grant"
    for body in (b"<html>", b"[]", b'{"error": 7}', b"{}", b""):
        assert oauth_error(body) is None, body
