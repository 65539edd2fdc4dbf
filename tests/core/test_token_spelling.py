"""One access token, one spelling: re-spelled tokens and high-S twins do not verify."""

from __future__ import annotations

import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from silentauth.core.encoding import b64decode, b64encode
from silentauth.core.keys import KeyRing
from silentauth.core.tokens import mint
from silentauth.errors import InvalidToken
from tests.core.test_tokens import NOW, claims, make_key, verifier

P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

KEY = make_key()
RING = KeyRing([KEY], 60)
VERIFY = verifier(RING)
TOKEN = mint(KEY, claims())


def _s(token: str) -> int:
    return int.from_bytes(b64decode(token.rsplit(".", 1)[1])[32:], "big")


def test_a_thousand_signed_tokens_are_all_low_s_and_verify() -> None:
    """Half of raw ECDSA signatures are high-S: the signer must normalise every one."""
    for i in range(1000):
        token = mint(KEY, claims(jti=f"j{i}"))
        assert _s(token) <= P256_N // 2, i
        assert VERIFY.verify(token, NOW)["jti"] == f"j{i}"


def test_high_s_twin_is_a_valid_ecdsa_signature_but_refused() -> None:
    body, sig = TOKEN.rsplit(".", 1)
    raw = b64decode(sig)
    r, s = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
    twin = raw[:32] + (P256_N - s).to_bytes(32, "big")
    # The twin is mathematically valid: the library alone accepts it...
    KEY.public.verify(encode_dss_signature(r, P256_N - s), body.encode(), ec.ECDSA(hashes.SHA256()))
    # ...so the low-S rule is what refuses it.
    with pytest.raises(InvalidToken, match="signature"):
        VERIFY.verify(f"{body}.{b64encode(twin)}", NOW)


def test_low_s_tokens_still_verify_with_pyjwt() -> None:
    # NOW is a fixed instant: PyJWT checks the signature here, not the clock.
    times = {"verify_exp": False, "verify_iat": False, "verify_nbf": False}
    for i in range(20):
        token = mint(KEY, claims(jti=f"p{i}"))
        decoded = pyjwt.decode(token, KEY.public, algorithms=["ES256"], audience="api", options=times)
        assert decoded["jti"] == f"p{i}"


def _variants(token: str, draw: st.DataObject) -> list[str]:
    """Strings an old, lenient decoder would read as ``token``."""
    head, payload, sig = token.split(".")
    out = [f"{head}.{payload}.{sig}=", f"{head}=.{payload}.{sig}"]
    if sig != sig.replace("-", "+").replace("_", "/"):
        out.append(f"{head}.{payload}.{sig.replace('-', '+').replace('_', '/')}")
    last = ALPHABET.index(sig[-1]) | draw.draw(st.integers(1, 15))
    out.append(f"{head}.{payload}.{sig[:-1]}{ALPHABET[last]}")
    at = draw.draw(st.integers(0, len(sig)))
    junk = draw.draw(st.sampled_from(["****", "!!!!", "~~~~", "%%%%", "\t\t\t\t", "    "]))
    out.append(f"{head}.{payload}.{sig[:at]}{junk}{sig[at:]}")
    return out


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 10**9), st.data())
def test_respelled_tokens_are_refused(jti: int, draw: st.DataObject) -> None:
    token = mint(KEY, claims(jti=str(jti)))
    assert VERIFY.verify(token, NOW)["jti"] == str(jti)
    for variant in _variants(token, draw):
        assert variant != token
        with pytest.raises(InvalidToken):
            VERIFY.verify(variant, NOW)
