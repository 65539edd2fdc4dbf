"""base64url and JSON decoding accept exactly one spelling of each value."""

from __future__ import annotations

import base64
import json
import math

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from silentauth.core.encoding import b64decode, b64encode, dumps, loads

ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


@settings(max_examples=300)
@given(st.binary(max_size=200))
def test_base64url_round_trips(data: bytes) -> None:
    assert b64decode(b64encode(data)) == data
    assert b64decode(b64encode(data).encode()) == data


@settings(max_examples=1000)
@given(st.text(alphabet=ALPHABET + "+/=. \t\n*é", max_size=40))
@example("QQ==")
@example("QR")
@example("Q")
@example("a+b/")
def test_only_the_canonical_spelling_decodes(text: str) -> None:
    """Whatever decodes re-encodes to itself: no two strings give the same bytes."""
    try:
        data = b64decode(text)
    except ValueError:
        return
    assert b64encode(data) == text


@settings(max_examples=300)
@given(st.binary(min_size=1, max_size=100), st.data())
def test_variants_of_a_canonical_string_are_refused(data: bytes, draw: st.DataObject) -> None:
    text = b64encode(data)
    variants = [text + "=" * (-len(text) % 4 or 2), text + "\n", " " + text]
    std = text.replace("-", "+").replace("_", "/")
    if std != text:
        variants.append(std)
    if len(text) % 4:
        # The last character carries 2 or 4 unused bits: set one.
        spare = ALPHABET.index(text[-1]) | 1
        if ALPHABET[spare] != text[-1]:
            variants.append(text[:-1] + ALPHABET[spare])
    at = draw.draw(st.integers(0, len(text)))
    variants.append(text[:at] + draw.draw(st.sampled_from("*!.~%$")) * 4 + text[at:])
    for variant in variants:
        assert variant != text
        with pytest.raises(ValueError):
            b64decode(variant)


def test_length_one_mod_four_and_non_ascii_bytes_are_refused() -> None:
    for bad in ("A", "AAAAA", b"\xff\xfe", "QUJD\u00e9"):
        with pytest.raises(ValueError):
            b64decode(bad)


@pytest.mark.parametrize(
    "text",
    [
        '{"exp": NaN}',
        '{"exp": Infinity}',
        '{"exp": -Infinity}',
        '{"exp": 1e400}',
        '{"exp": -1e400}',
        '{"sub": "a", "sub": "b"}',
        '{"a": {"x": 1, "x": 1}}',
        '{"name": "\\ud800"}',
        '{"\\udfff": 1}',
        '["\\ud83d"]',
        "[" * 100_000 + "]" * 100_000,
        b'{"name": "\xff"}',
        '{"name": "\ud800"}',
    ],
)
def test_strict_json_refuses(text: str | bytes) -> None:
    with pytest.raises(ValueError):
        loads(text)


def test_strict_json_keeps_what_is_valid() -> None:
    assert loads(b'{"e": "\\ud83d\\ude00", "n": 1.5e300, "i": -0, "s": "\\\\udfff"}') == {
        "e": "\U0001f600",
        "n": 1.5e300,
        "i": 0,
        "s": "\\udfff",
    }
    assert loads(dumps({"a": [1, 2.5, None, True, "é"]})) == {"a": [1, 2.5, None, True, "é"]}


@settings(max_examples=300)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text()
        | st.floats(allow_nan=False, allow_infinity=False),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
        max_leaves=20,
    )
)
def test_strict_json_reads_whatever_json_dumps_writes(value: object) -> None:
    """No false refusals: any finite JSON value without lone surrogates round-trips."""
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return  # hypothesis drew a lone surrogate: refused, as above
    out = loads(json.dumps(value))
    if isinstance(value, float) and math.isnan(value):  # pragma: no cover - excluded
        return
    assert out == value


def test_configured_secret_keeps_its_lenient_reading() -> None:
    """SECRET_KEY is the operator's, not a token: reading it strictly would derive
    another master key and strand every stored signing key, so ``+/`` still decode."""
    from silentauth.core.keys import MasterKey

    raw = bytes(range(200, 232))  # its base64 holds "+" and "/"
    std = base64.b64encode(raw).decode().rstrip("=")
    assert "+" in std or "/" in std
    from_settings = MasterKey.from_settings(std, "", "postgresql://db/x")
    assert from_settings.derive("label") == MasterKey(raw).derive("label")
    assert MasterKey.from_settings(b64encode(raw), "", "postgresql://db/x").derive("label") == MasterKey(raw).derive("label")


# --- dumps: one C encoder made once ---


@pytest.mark.parametrize(
    "value",
    [
        {"access_token": "a.b.c", "token_type": "Bearer", "expires_in": 300, "scope": "a b"},
        {"nested": {"list": [1, 2.5, -0.0, True, False, None, "Zoë ☃ \ud83d\ude00", 'q"\\\n']}, "": {}},
        {1: "int key", 2.5: "float key", False: "bool key", None: "none key"},
        [float("nan"), float("inf"), 10**30, "x" * 1000],
        "a lone string",
        42,
    ],
)
def test_dumps_gives_the_bytes_of_a_compact_json_encoder(value: object) -> None:
    expected = json.JSONEncoder(separators=(",", ":")).encode(value).encode()
    assert dumps(value) == expected
    assert dumps(value) == expected  # the shared encoder keeps no state between calls


def test_dumps_refuses_what_json_cannot_encode_and_stays_usable() -> None:
    with pytest.raises(TypeError, match="Object of type bytes is not JSON serializable"):
        dumps({"a": [b"raw"]})
    cyclic: list[object] = []
    cyclic.append(cyclic)
    with pytest.raises(RecursionError):
        dumps(cyclic)
    assert dumps({"a": [1]}) == b'{"a":[1]}'
