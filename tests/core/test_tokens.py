from __future__ import annotations

import json
import os
import time
from typing import Any

import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from silentauth.core.encoding import b64decode, b64encode
from silentauth.core.keys import KeyRing, SigningKey
from silentauth.core.tokens import (
    MAX_TOKEN_LENGTH,
    REGISTERED_CLAIMS,
    AccessTokenVerifier,
    access_claims,
    decode_unverified,
    mint,
    mint_json,
    new_jti,
    registered_claims,
)
from silentauth.errors import InvalidToken

NOW = 1_800_000_000.0


def make_key(kid: str = "k1", created: float = NOW - 10, not_after: float = NOW + 3600) -> SigningKey:
    private = ec.generate_private_key(ec.SECP256R1())
    return SigningKey(kid, private.public_key(), private, created, not_after)


def claims(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "iss": "https://issuer.test",
        "sub": "user-1",
        "aud": "api",
        "exp": int(NOW + 300),
        "iat": int(NOW),
        "jti": "j1",
        "sid": "s1",
        "scope": "openid api",
        "auth_time": int(NOW),
        "client_id": "native",
    }
    base.update(over)
    return base


def verifier(ring: KeyRing) -> AccessTokenVerifier:
    return AccessTokenVerifier(lambda kid, now: ring.get(kid, now), "https://issuer.test", "api")


def test_minted_token_is_rfc9068_shaped_and_verifies() -> None:
    key = make_key()
    token = mint(key, claims())
    header, body = decode_unverified(token)
    assert header == {"alg": "ES256", "kid": "k1", "typ": "at+jwt"}
    assert verifier(KeyRing([key], 60)).verify(token, NOW)["sub"] == "user-1"


def test_token_verifies_with_pyjwt_from_the_jwks_alone() -> None:
    key = make_key()
    ring = KeyRing([key], 60)
    token = mint(key, claims(exp=int(time.time()) + 300, iat=int(time.time())))
    jwk = pyjwt.PyJWKSet.from_dict(ring.jwks(NOW))["k1"]
    decoded = pyjwt.decode(token, jwk.key, algorithms=["ES256"], audience="api", issuer="https://issuer.test")
    assert decoded["sid"] == "s1"


# The description is what a resource server sends back in WWW-Authenticate.
@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"exp": int(NOW - 60)}, "The access token has expired."),
        ({"aud": "other"}, "The access token is meant for another audience."),
        ({"aud": "apis"}, "The access token is meant for another audience."),  # not a substring match
        ({"aud": ["apis", "x"]}, "The access token is meant for another audience."),
        ({"iss": "https://evil.test"}, "The access token was issued by someone else."),
        ({"iat": int(NOW + 3600)}, "The access token was issued in the future."),
        ({"nbf": int(NOW + 3600)}, "The access token is not valid yet."),
        ({"exp": "soon"}, "The access token's 'exp' claim is not a number."),
        ({"sub": 5}, "The access token's 'sub' claim is not a string."),
    ],
)
def test_bad_claims_are_rejected(change: dict[str, Any], message: str) -> None:
    key = make_key()
    with pytest.raises(InvalidToken) as exc:
        verifier(KeyRing([key], 60)).verify(mint(key, claims(**change)), NOW)
    assert exc.value.error_description == message


def test_time_claims_are_judged_with_the_leeway_and_no_more() -> None:
    key = make_key()
    check = verifier(KeyRing([key], 60))
    leeway = check.leeway
    # Valid right up to the edges of the leeway...
    for edge in (
        {"exp": NOW - leeway + 1},
        {"nbf": NOW + leeway},
        {"iat": NOW + leeway},
        {"exp": NOW + 1},
    ):
        check.verify(mint(key, claims(**edge)), NOW)
    # ...and not one step past them.
    for past, message in (
        ({"exp": NOW - leeway}, "The access token has expired."),
        ({"nbf": NOW + leeway + 1}, "The access token is not valid yet."),
        ({"iat": NOW + leeway + 1}, "The access token was issued in the future."),
    ):
        with pytest.raises(InvalidToken) as exc:
            check.verify(mint(key, claims(**past)), NOW)
        assert exc.value.error_description == message


def test_the_default_clock_skew_tolerance_is_five_seconds() -> None:
    # The resource kit (RemoteVerifier) documents the same five seconds: an API and the
    # token service must agree on when a token is dead.
    key = make_key()
    check = verifier(KeyRing([key], 60))
    check.verify(mint(key, claims(exp=NOW - 4.5)), NOW)
    with pytest.raises(InvalidToken, match="expired"):
        check.verify(mint(key, claims(exp=NOW - 5.5)), NOW)


def test_missing_claim_is_rejected() -> None:
    key = make_key()
    c = claims()
    del c["sid"]
    with pytest.raises(InvalidToken, match="sid"):
        verifier(KeyRing([key], 60)).verify(mint(key, c), NOW)


def test_audience_list_containing_ours_is_accepted() -> None:
    key = make_key()
    verifier(KeyRing([key], 60)).verify(mint(key, claims(aud=["x", "api"])), NOW)


def _forge(header: dict[str, Any], body: dict[str, Any], sig: bytes = b"") -> str:
    return f"{b64encode(json.dumps(header).encode())}.{b64encode(json.dumps(body).encode())}.{b64encode(sig)}"


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "HS256", "RS256", "ES384", "EdDSA"])
def test_unpinned_algorithms_are_refused(alg: str) -> None:
    key = make_key()
    token = _forge({"alg": alg, "kid": "k1", "typ": "at+jwt"}, claims(), b"x" * 64)
    with pytest.raises(InvalidToken) as exc:
        verifier(KeyRing([key], 60)).verify(token, NOW)
    assert exc.value.error_description == "The access token's algorithm is not accepted."


def test_hs256_signed_with_the_public_key_is_refused() -> None:
    key = make_key()
    pem = key.jwk()["x"].encode()
    token = pyjwt.encode(claims(), pem, algorithm="HS256", headers={"kid": "k1", "typ": "at+jwt"})
    with pytest.raises(InvalidToken):
        verifier(KeyRing([key], 60)).verify(token, NOW)


def test_unknown_kid_and_embedded_jwk_headers_are_refused() -> None:
    key, attacker = make_key(), make_key("k1")
    ring = KeyRing([key], 60)
    with pytest.raises(InvalidToken) as exc:
        verifier(ring).verify(mint(attacker, claims()), NOW)  # same kid, other key
    assert exc.value.error_description == "The access token's signature is invalid."
    with pytest.raises(InvalidToken, match="unknown key"):
        verifier(ring).verify(mint(make_key("nope"), claims()), NOW)
    forged = _forge({"alg": "ES256", "kid": "k1", "typ": "at+jwt", "jwk": attacker.jwk()}, claims(), b"x" * 64)
    with pytest.raises(InvalidToken) as exc:
        verifier(ring).verify(forged, NOW)
    assert exc.value.error_description == "The access token carries unsupported header parameters."


def test_a_token_that_names_no_key_is_refused() -> None:
    key = make_key()
    for kid in ({}, {"kid": 7}):
        token = _forge({"alg": "ES256", "typ": "at+jwt", **kid}, claims(), b"x" * 64)
        with pytest.raises(InvalidToken) as exc:
            verifier(KeyRing([key], 60)).verify(token, NOW)
        assert exc.value.error_description == "The access token names no key (kid)."


def test_a_signature_that_is_not_base64url_is_malformed() -> None:
    head, body, sig = mint(make_key(), claims()).split(".")
    with pytest.raises(InvalidToken) as exc:
        verifier(KeyRing([make_key()], 60)).verify(f"{head}.{body}.{sig}=", NOW)
    assert exc.value.error_description == "The access token is malformed."


def test_wrong_typ_is_refused() -> None:
    key = make_key()
    for typ in ({"typ": "JWT"}, {}):
        token = _forge({"alg": "ES256", "kid": "k1", **typ}, claims(), b"x" * 64)
        with pytest.raises(InvalidToken) as exc:
            verifier(KeyRing([key], 60)).verify(token, NOW)
        assert exc.value.error_description == "The token is not an access token (typ must be at+jwt)."


@pytest.mark.parametrize(
    "token",
    ["", "a.b", "a.b.c.d", "..", "é.é.é", "x" * 9000, "eyJ.eyJ.sig", f"{b64encode(b'[]')}.e30.AA"],
)
def test_malformed_tokens_are_invalid_token(token: str) -> None:
    with pytest.raises(InvalidToken) as exc:
        verifier(KeyRing([make_key()], 60)).verify(token, NOW)
    assert exc.value.error_description == "The access token is malformed."


def test_a_signed_token_with_a_segment_missing_or_added_is_malformed() -> None:
    key = make_key()
    token = mint(key, claims())
    head, body, _ = token.split(".")
    for bad in (f"{head}.{body}.", f"{token}.{body}", f"{head}..{body}"):
        with pytest.raises(InvalidToken) as exc:
            verifier(KeyRing([key], 60)).verify(bad, NOW)
        assert exc.value.error_description == "The access token is malformed."


def test_tokens_longer_than_the_cap_are_refused_unread_even_if_signed() -> None:
    keys = [make_key("k" * n) for n in (1, 2, 3)]
    check = verifier(KeyRing(keys, 60))

    def signed(length: int) -> str:
        # Pad a claim (and the kid: base64url has no length 1 mod 4) to `length`.
        for key in keys:
            start = (length - len(mint(key, claims()))) * 3 // 4 - 32
            for pad in range(max(start, 0), start + 32):
                token = mint(key, claims(pad="p" * pad))
                if len(token) == length:
                    return token
        raise AssertionError(length)

    check.verify(signed(MAX_TOKEN_LENGTH), NOW)
    with pytest.raises(InvalidToken) as exc:
        check.verify(signed(MAX_TOKEN_LENGTH + 1), NOW)
    assert exc.value.error_description == "The access token is malformed."


def test_retired_key_verifies_until_grace_then_stops() -> None:
    old = make_key("old", created=NOW - 100, not_after=NOW - 10)
    new = make_key("new", created=NOW - 5)
    ring = KeyRing([old, new], verify_grace=60)
    assert ring.signing_key(NOW).kid == "new"  # type: ignore[union-attr]
    assert ring.get("old", NOW) is not None
    assert ring.get("old", NOW + 60) is None
    assert [k["kid"] for k in ring.jwks(NOW)["keys"]] == ["old", "new"]


@pytest.mark.parametrize("token", ["", "a.b", "a.b.c.d"])
def test_decode_unverified_says_a_token_without_three_segments_is_malformed(token: str) -> None:
    with pytest.raises(InvalidToken) as exc:
        decode_unverified(token)
    assert exc.value.error_description == "The access token is malformed."


# --- the registered claims spelled out (no generic JSON encoder per token) ---


def registered(**over: Any) -> dict[str, Any]:
    return {**claims(), "preferred_username": "alice", **over}


@pytest.mark.parametrize(
    "over",
    [
        {},
        {"aud": ["https://a.example", "https://b.example"]},
        # Escapes: quotes, backslashes, control and non-ASCII characters, a lone surrogate.
        {"sub": 'u"1\\', "preferred_username": "Zoë 李\n\x00\ud800", "scope": "a/b c"},
        {"exp": 0, "iat": -1, "auth_time": 10**12},
    ],
)
def test_registered_claims_are_the_bytes_the_json_encoder_gives(over: dict[str, Any]) -> None:
    values = registered(**over)
    assert b"{" + registered_claims(**values) + b"}" == json.dumps(values, separators=(",", ":")).encode()
    assert set(values) == REGISTERED_CLAIMS


def test_registered_claims_refuse_a_time_that_is_not_a_whole_number() -> None:
    with pytest.raises(ValueError, match="'d'"):
        registered_claims(**registered(exp=NOW + 0.5))


def test_custom_claims_come_first_and_never_replace_a_registered_one() -> None:
    members = registered_claims(**registered())
    assert access_claims(members, None) == access_claims(members, {}) == b"{" + members + b"}"
    # All custom claims reserved: nothing of them is left, and no stray comma either.
    assert access_claims(members, {"sub": "mallory"}) == b"{" + members + b"}"
    body = access_claims(members, {"roles": ["x"], "sub": "mallory", "iss": "https://evil.test"})
    assert body.startswith(b'{"roles":["x"],"iss":"https://issuer.test",')
    assert json.loads(body) == {"roles": ["x"], **registered()}  # one "sub", the registered one


def test_a_token_minted_from_the_spelled_out_claims_verifies_with_pyjwt_and_ours() -> None:
    key = make_key()
    now = int(time.time())
    values = registered(exp=now + 300, iat=now, auth_time=now)
    token = mint_json(key, access_claims(registered_claims(**values), {"tenant": "t"}))
    assert token.split(".")[0] == mint(key, values).split(".")[0]
    jwk = pyjwt.PyJWKSet.from_dict(KeyRing([key], 60).jwks(NOW))["k1"]
    decoded = pyjwt.decode(token, jwk.key, algorithms=["ES256"], audience="api", issuer="https://issuer.test")
    assert decoded == {"tenant": "t", **values}
    assert verifier(KeyRing([key], 60)).verify(token, now) == decoded


def test_a_new_signing_key_changes_the_header_kid() -> None:
    # The header segment is cached per kid: a rotated key must not sign under the old kid.
    first, second = make_key("k1"), make_key("k2")
    body = access_claims(registered_claims(**registered()))
    one, two = mint_json(first, body), mint_json(second, body)
    assert decode_unverified(one)[0]["kid"] == "k1" and decode_unverified(two)[0]["kid"] == "k2"
    ring = verifier(KeyRing([first, second], 60))
    assert ring.verify(one, NOW) == ring.verify(two, NOW) == json.loads(body)


def test_jtis_are_distinct_base64url_of_96_bits() -> None:
    drawn = [new_jti() for _ in range(2000)]  # several refills of the pool
    assert len(set(drawn)) == len(drawn)
    assert all(len(j) == 16 and b64encode(b64decode(j)) == j for j in drawn)


def test_jtis_share_no_run_of_eight_characters() -> None:
    # Each id is fresh randomness, not a shifted window of another one's: 48 shared
    # bits between any two of 2,000 random ids would happen about once in 10**13 runs.
    drawn = [new_jti() for _ in range(2000)]
    runs = [j[i : i + 8] for j in drawn for i in range(len(j) - 7)]
    assert len(set(runs)) == len(runs)


def test_a_forked_worker_draws_other_jtis_than_its_parent() -> None:
    new_jti()  # the pool now holds ids this process has not handed out yet
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next ids and leave at once
        try:
            os.write(write, " ".join(new_jti() for _ in range(8)).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as f:
        child = set(f.read().split())
    os.waitpid(pid, 0)
    parent = {new_jti() for _ in range(8)}
    assert len(child) == 8 and not child & parent
