"""Our access tokens verify with PyJWT and joserfc from the JWKS alone (RFC 9068)."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import jwt as pyjwt
import pytest
from joserfc import jwt as jose_jwt
from joserfc.jwk import KeySet

from silentauth.core.encoding import b64encode
from tests.conftest import LiveServer

ISSUER = "https://issuer.test"


def _token(live: LiveServer) -> str:
    r = httpx.post(
        f"{live.url}/auth/token",
        data={"grant_type": "password", "username": "alice", "password": "secret"},
    )
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


def test_pyjwt_verifies_our_token_with_keys_fetched_by_its_own_jwks_client(
    live_server_factory: Callable[..., LiveServer],
) -> None:
    live = live_server_factory(issuer=ISSUER)
    token = _token(live)
    signing_key = pyjwt.PyJWKClient(
        f"{live.url}/.well-known/jwks.json"
    ).get_signing_key_from_jwt(token)
    claims = pyjwt.decode(
        token,
        signing_key.key,
        algorithms=["ES256"],
        audience="silentauth",
        issuer=ISSUER,
        options={"require": ["exp", "iat", "iss", "aud", "sub", "jti"]},
    )
    assert claims["preferred_username"] == "alice"
    assert pyjwt.get_unverified_header(token)["typ"] == "at+jwt"
    forged = token.rsplit(".", 1)[0] + "." + b64encode(b"\x01" * 64)
    with pytest.raises(pyjwt.InvalidSignatureError):
        pyjwt.decode(
            forged, signing_key.key, algorithms=["ES256"], audience="silentauth"
        )


def test_joserfc_verifies_our_token_from_the_jwk_set(
    live_server_factory: Callable[..., LiveServer],
) -> None:
    live = live_server_factory(issuer=ISSUER)
    token = _token(live)
    keys = KeySet.import_key_set(httpx.get(f"{live.url}/.well-known/jwks.json").json())
    decoded = jose_jwt.decode(token, keys, algorithms=["ES256"])
    assert decoded.header["typ"] == "at+jwt"
    assert decoded.header["kid"] in {k.kid for k in keys}
    registry = jose_jwt.JWTClaimsRegistry(
        now=int(time.time()),
        iss={"essential": True, "value": ISSUER},
        aud={"essential": True, "value": "silentauth"},
        sub={"essential": True},
        sid={"essential": True},
        auth_time={"essential": True},
    )
    registry.validate(decoded.claims)
    assert decoded.claims["client_id"] == "native"
