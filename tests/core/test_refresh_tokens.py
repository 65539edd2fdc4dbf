from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from silentauth.core.encoding import b64encode
from silentauth.core.keys import MasterKey
from silentauth.core.refresh import RefreshTokens
from silentauth.errors import InvalidGrant

MASTER = MasterKey(b"k" * 32)


def test_issued_token_parses_back_to_session_and_counter() -> None:
    rt = RefreshTokens(MASTER)
    token = rt.issue("abcdefghijklmnopqrstuv", 7)
    assert token.startswith("v1.abcdefghijklmnopqrstuv.7.")
    assert rt.parse(token) == ("abcdefghijklmnopqrstuv", 7)


def test_mac_carries_256_bits() -> None:
    token = RefreshTokens(MASTER).issue("abcdefghijklmnopqrstuv", 0)
    assert len(token.rsplit(".", 1)[1]) == 43  # 32 bytes, base64url


@pytest.mark.parametrize(
    "mutate",
    [
        lambda t: t.replace(".7.", ".8."),  # counter bumped by the holder
        lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),  # MAC flipped
        lambda t: t.replace("v1.", "v2."),
        lambda t: t[:-5],  # truncated
        lambda t: t + "=",
        lambda t: "",
        lambda t: "v1...",
        lambda t: t + "." + t,
        lambda t: t.replace(".7.", ".07."),  # non-canonical counter
        lambda t: t.replace(".7.", ".-1."),
        lambda t: "v1." + "a" * 5000,
    ],
)
def test_tampered_or_garbage_tokens_are_invalid_grant(mutate: object) -> None:
    rt = RefreshTokens(MASTER)
    token = rt.issue("abcdefghijklmnopqrstuv", 7)
    with pytest.raises(InvalidGrant):
        rt.parse(mutate(token))  # type: ignore[operator]


def test_token_from_another_master_key_is_rejected() -> None:
    other = RefreshTokens(MasterKey(b"x" * 32)).issue("abcdefghijklmnopqrstuv", 1)
    with pytest.raises(InvalidGrant) as exc:
        RefreshTokens(MASTER).parse(other)
    # Well-formed but not ours: the client is told which, as error_description.
    assert exc.value.error_description == "The refresh token is invalid."
    with pytest.raises(InvalidGrant) as exc:
        RefreshTokens(MASTER).parse("v1.x")
    assert exc.value.error_description == "The refresh token is malformed."


def test_csrf_proof_is_bound_to_the_session() -> None:
    rt = RefreshTokens(MASTER)
    proof = rt.csrf_token("session-a-xxxxxxxxxxxx")
    assert rt.check_csrf("session-a-xxxxxxxxxxxx", proof)
    assert not rt.check_csrf("session-b-xxxxxxxxxxxx", proof)
    assert not rt.check_csrf("session-a-xxxxxxxxxxxx", proof[:-1] + "x")


def test_short_master_key_is_refused() -> None:
    from silentauth.errors import ConfigError

    with pytest.raises(ConfigError, match="SECRET_KEY"):
        MasterKey(b"short")


@pytest.mark.parametrize(
    ("session_id", "counter"), [("abcdefghijklmnopqrstuv", 0), ("A" * 64, 10**18 - 1), ("-_" * 8, 42)]
)
def test_mac_is_hmac_sha256_as_the_standard_library_computes_it(session_id: str, counter: int) -> None:
    # Tokens issued before the MAC was spelled out over two SHA-256 states must stay valid.
    key = MASTER.derive("silentauth refresh-token v1")
    expected = hmac.new(key, f"{session_id}.{counter}".encode(), hashlib.sha256).digest()
    token = RefreshTokens(MASTER).issue(session_id, counter)
    assert token == f"v1.{session_id}.{counter}.{b64encode(expected)}"
    assert RefreshTokens(MASTER).parse(token) == (session_id, counter)
def test_a_token_issued_before_a_restart_or_upgrade_still_verifies() -> None:
    # Pinned for one secret: a change to the key derivation or the MAC input would log
    # every user out at the next deploy. The value follows the module docstring:
    # HMAC-SHA256(HMAC-SHA256(secret, "silentauth refresh-token v1"), "<id>.<counter>").
    issued_earlier = "v1.SSSSSSSSSSSSSSSSSSSSSS.7.2vYPW0x7DyM94nMCfUWmPTPPY7HgpmEvG11upXQrnoM"
    key = hmac.new(b"k" * 32, b"silentauth refresh-token v1", hashlib.sha256).digest()
    mac = hmac.new(key, b"SSSSSSSSSSSSSSSSSSSSSS.7", hashlib.sha256).digest()
    assert issued_earlier.endswith(base64.urlsafe_b64encode(mac).rstrip(b"=").decode())
    assert RefreshTokens(MASTER).parse(issued_earlier) == ("S" * 22, 7)
    assert RefreshTokens(MASTER).issue("S" * 22, 7) == issued_earlier
