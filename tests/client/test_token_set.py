"""TokenSet: expiry math, skew tolerance, what a refresh response keeps."""

from __future__ import annotations

import base64
import json
import math

from silentauth.client import TokenSet
from silentauth.client.token_set import token_lifetime, unverified_claims


def jwt(claims: dict[str, object]) -> str:
    def seg(obj: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return f"{seg({'alg': 'ES256'})}.{seg(claims)}.c2ln"


def test_jwt_lifetime_counts_from_receipt_so_a_skewed_client_clock_does_not_matter() -> None:
    server_now = 1_800_000_000
    token = jwt({"iat": server_now, "exp": server_now + 900})
    client_now = server_now + 3600  # the client's clock is an hour fast
    tokens = TokenSet.from_response({"access_token": token, "expires_in": 900}, client_now)
    assert tokens.expires_at == client_now + 900
    assert not tokens.due(client_now + 800, margin=60)
    assert tokens.due(client_now + 841, margin=60)


def test_jwt_lifetime_wins_over_a_wrong_expires_in() -> None:
    assert token_lifetime(jwt({"iat": 100, "exp": 400}), 9999, now=0) == 300


def test_opaque_token_uses_expires_in_and_unknown_expiry_never_comes_due() -> None:
    assert token_lifetime("opaque", 120, now=0) == 120
    forever = TokenSet.from_response({"access_token": "opaque"}, 0)
    assert forever.expires_at == math.inf and not forever.due(10**12, 60)
    assert TokenSet.from_dict(forever.to_dict()) == forever  # JSON has no infinity


def test_jwt_without_iat_falls_back_to_expires_in_then_to_exp() -> None:
    assert token_lifetime(jwt({"exp": 500}), 60, now=100) == 60
    assert token_lifetime(jwt({"exp": 500}), None, now=100) == 400


def test_malformed_jwt_payload_is_treated_as_opaque() -> None:
    assert unverified_claims("a.!!!.c") == {}
    assert unverified_claims("a.bm90IGpzb24.c") == {}
    assert unverified_claims(jwt(["not", "a", "dict"])) == {}  # type: ignore[arg-type]


def test_margin_is_capped_at_half_the_lifetime() -> None:
    short = TokenSet("a", "r", issued_at=0, expires_at=30)
    assert not short.due(14, margin=60) and short.due(15, margin=60)


def test_refresh_response_without_refresh_token_keeps_the_previous_one() -> None:
    old = TokenSet("a", "r1", 0, 60, scope="api")
    new = TokenSet.from_response({"access_token": "b", "expires_in": 60}, 10, previous=old)
    assert new.refresh_token == "r1" and new.scope == "api"


def test_a_pending_key_survives_the_file_and_a_pushed_access_token_but_not_a_new_grant() -> None:
    tokens = TokenSet.from_response({"access_token": "a", "refresh_token": "r", "expires_in": 60}, 1000.0)
    assert tokens.pending_key is None
    keyed = tokens.with_pending_key()
    assert keyed.pending_key and len(keyed.pending_key) >= 22 and keyed.with_pending_key() is keyed
    assert TokenSet.from_dict(keyed.to_dict()) == keyed  # persisted with the grant
    assert keyed.with_access_token("b", 1010.0).pending_key == keyed.pending_key  # same refresh token
    assert TokenSet.from_response({"access_token": "c", "refresh_token": "r2"}, 1020.0, keyed).pending_key is None
