"""The ``Idempotency-Key`` header value: what a client may send, and what it is told otherwise."""

from __future__ import annotations

import pytest

from silentauth.core.idempotency import key_hash, parse_key, same_key
from silentauth.errors import InvalidRequest


@pytest.mark.parametrize("length", [22, 128])
def test_a_key_of_22_to_128_base64url_characters_is_accepted(length: int) -> None:
    key = "aB-_" * 32
    assert parse_key(key[:length]) == key[:length]
    assert parse_key(f'"{key[:length]}"') == key[:length]  # the RFC 8941 string spelling


@pytest.mark.parametrize("value", ["a" * 21, "a" * 129, '"' + "a" * 129 + '"', '""', '"', ""])
def test_a_key_outside_the_bounds_is_refused_with_the_expected_shape(value: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        parse_key(value)
    # The client developer reads this in the 400 answer: it must name the header and the bounds.
    assert refused.value.error_description == (
        "The Idempotency-Key header must be 22-128 base64url characters (128 random bits or more)."
    )


def test_a_retry_with_the_same_key_matches_and_any_other_or_none_does_not() -> None:
    stored = key_hash("k" * 22)
    assert same_key(stored, key_hash("k" * 22))
    assert not same_key(stored, key_hash("j" * 22))
    assert not same_key(key_hash(None), key_hash(None))  # a rotation made without a key
