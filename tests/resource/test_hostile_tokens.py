"""Every hostile token of the OWASP JWT checklist: 401, never 2xx, never 5xx.

Each case goes to three verifiers: the token service's own ``/api/me`` (local
key ring), the example FastAPI app (keys from the JWKS over HTTP), and a plain
Starlette app using :class:`SilentAuthBackend` with ``AuthenticationMiddleware``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from silentauth.core.encoding import b64decode, b64encode, dumps
from silentauth.core.keys import SigningKey
from silentauth.core.tokens import decode_unverified
from silentauth.errors import OAuthError
from silentauth.resource import SilentAuthBackend, TokenAuthenticator, require_auth
from silentauth.resource.responses import error_response
from tests.conftest import Service
from tests.resource.conftest import example_app, sign


@dataclass
class Material:
    """What an attacker might hold: valid tokens, a refresh token, the public key."""

    token: str
    other: str
    refresh_token: str
    key: SigningKey  # the real signing key, to prove header/claim checks hold on their own
    jwk: dict[str, Any]
    now: float

    @property
    def header(self) -> dict[str, Any]:
        return decode_unverified(self.token)[0]

    @property
    def claims(self) -> dict[str, Any]:
        return decode_unverified(self.token)[1]


def _hs256(secret: bytes, header: dict[str, Any], claims: dict[str, Any]) -> str:
    signing_input = f"{b64encode(dumps(header))}.{b64encode(dumps(claims))}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64encode(mac)}"


def _attacker(kid: str) -> SigningKey:
    private = ec.generate_private_key(ec.SECP256R1())
    return SigningKey(kid, private.public_key(), private, 0, 1e12)


def _with(m: Material, **claims: Any) -> str:
    return sign(m.key, m.header, {**m.claims, **claims})


def _header(m: Material, **header: Any) -> str:
    return sign(m.key, {**m.header, **header}, m.claims)


def _alg_none(alg: str, keep_signature: bool) -> Callable[[Material], str]:
    def build(m: Material) -> str:
        h, p, s = m.token.split(".")
        head = b64encode(dumps({**m.header, "alg": alg}))
        return f"{head}.{p}.{s if keep_signature else ''}"

    return build


def _pem(m: Material) -> bytes:
    return m.key.public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _embedded_jwk(m: Material) -> str:
    evil = _attacker(m.header["kid"])
    return sign(evil, {**m.header, "jwk": evil.jwk()}, m.claims)


def _id_token(m: Material) -> str:
    c = m.claims
    claims = {
        "iss": c["iss"],
        "sub": c["sub"],
        "aud": c["client_id"],
        "exp": c["exp"],
        "iat": c["iat"],
        "auth_time": c["auth_time"],
        "nonce": "n-0S6_WzA2Mj",
    }
    return sign(m.key, {"alg": "ES256", "kid": m.header["kid"], "typ": "JWT"}, claims)


def _swapped(m: Material) -> str:
    h, _, s = m.token.split(".")
    return f"{h}.{m.other.split('.')[1]}.{s}"


# Order of the P-256 group: (r, n - s) verifies wherever (r, s) does, unless only low-S is allowed.
P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def _raw(m: Material, header: bytes, payload: bytes) -> str:
    """Signed by the real key over exactly these JSON bytes (which ``dumps`` cannot produce)."""
    signing_input = f"{b64encode(header)}.{b64encode(payload)}"
    return f"{signing_input}.{b64encode(m.key.sign(signing_input.encode()))}"


def _raw_claims(m: Material, extra: str) -> str:
    """The real claims with ``extra`` spliced in as raw JSON members before the last ``}``."""
    return _raw(m, dumps(m.header), dumps(m.claims)[:-1] + b"," + extra.encode() + b"}")


def _raw_value(m: Material, name: str, raw: str) -> str:
    """The real claims with claim ``name`` set to the raw JSON text ``raw``."""
    payload = dumps({**m.claims, name: "@@raw@@"}).replace(b'"@@raw@@"', raw.encode())
    return _raw(m, dumps(m.header), payload)


def _other_alphabet(m: Material) -> str:
    # Only the signature can be re-spelled (the signature covers the other two
    # segments as written); ECDSA is randomised, so sign until it holds a "-" or "_".
    for _ in range(500):
        body, sig = sign(m.key, m.header, m.claims).rsplit(".", 1)
        variant = sig.replace("-", "+").replace("_", "/")
        if variant != sig:
            return f"{body}.{variant}"
    raise AssertionError("no signature with '-' or '_' in 500 tries")


def _spare_bits(m: Material) -> str:
    # 64 signature bytes are 86 characters: the last one carries 4 unused bits.
    body, sig = m.token.rsplit(".", 1)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    return f"{body}.{sig[:-1]}{alphabet[alphabet.index(sig[-1]) | 1]}"


def _high_s(m: Material) -> str:
    body, sig = m.token.rsplit(".", 1)
    raw = b64decode(sig)
    s = int.from_bytes(raw[32:], "big")
    return f"{body}.{b64encode(raw[:32] + (P256_N - s).to_bytes(32, 'big'))}"


CASES: dict[str, Callable[[Material], str | bytes]] = {
    "alg_none_empty_sig": _alg_none("none", False),
    "alg_None": _alg_none("None", False),
    "alg_NoNe": _alg_none("NoNe", False),
    "alg_NONE_with_sig": _alg_none("NONE", True),
    "alg_RS256_label": _alg_none("RS256", True),
    "hs256_with_public_pem": lambda m: _hs256(
        _pem(m), {**m.header, "alg": "HS256"}, m.claims
    ),
    "hs256_with_public_jwk_json": lambda m: _hs256(
        json.dumps(m.jwk).encode(), {**m.header, "alg": "HS256"}, m.claims
    ),
    "forged_kid": lambda m: sign(
        _attacker("forged"), {**m.header, "kid": "forged"}, m.claims
    ),
    "kid_path_traversal_hs256_empty_key": lambda m: _hs256(
        b"", {**m.header, "alg": "HS256", "kid": "../../../../../../dev/null"}, m.claims
    ),
    "kid_sql_injection": lambda m: _hs256(
        b"x", {**m.header, "alg": "HS256", "kid": "x' UNION SELECT 'x' --"}, m.claims
    ),
    "kid_oversize": lambda m: _header(m, kid="k" * 5000),
    "kid_not_a_string": lambda m: _header(m, kid=["a"]),
    "jku_header": lambda m: _header(m, jku="http://127.0.0.1:1/jwks.json"),
    "x5u_header": lambda m: _header(m, x5u="http://127.0.0.1:1/cert.pem"),
    "x5c_header": lambda m: _header(m, x5c=["MIIB"]),
    "embedded_jwk_header": _embedded_jwk,
    "crit_header": lambda m: _header(m, crit=["exp"], exp=1),
    "expired": lambda m: _with(m, exp=int(m.now) - 60, iat=int(m.now) - 1000),
    "nbf_in_future": lambda m: _with(m, nbf=int(m.now) + 3600),
    "iat_in_future": lambda m: _with(m, iat=int(m.now) + 3600),
    "wrong_audience": lambda m: _with(m, aud="someone-else"),
    "wrong_issuer": lambda m: _with(m, iss="https://evil.example"),
    "missing_sid": lambda m: sign(
        m.key, m.header, {k: v for k, v in m.claims.items() if k != "sid"}
    ),
    "exp_as_string": lambda m: _with(m, exp=str(int(m.now) + 600)),
    "typ_JWT": lambda m: _header(m, typ="JWT"),
    "typ_missing": lambda m: sign(
        m.key, {"alg": "ES256", "kid": m.header["kid"]}, m.claims
    ),
    "refresh_token_as_access_token": lambda m: m.refresh_token,
    "id_token_as_access_token": _id_token,
    "truncated_signature": lambda m: m.token[:-8],
    "truncated_half": lambda m: m.token[: len(m.token) // 2],
    "signature_stripped": lambda m: m.token.rsplit(".", 1)[0] + ".",
    "two_segments": lambda m: m.token.rsplit(".", 1)[0],
    "payload_swapped": _swapped,
    "psychic_zero_signature": lambda m: (
        m.token.rsplit(".", 1)[0] + "." + b64encode(bytes(64))
    ),
    "padded_base64": lambda m: m.token + "==",
    "base64_plus_slash_alphabet": _other_alphabet,
    "base64_nonzero_spare_bits": _spare_bits,
    "base64_foreign_characters": lambda m: m.token[:-8] + "****" + m.token[-8:],
    "ecdsa_high_s_twin": _high_s,
    "exp_nan": lambda m: _raw_value(m, "exp", "NaN"),
    "exp_infinity": lambda m: _raw_value(m, "exp", "Infinity"),
    "exp_overflows_to_infinity": lambda m: _raw_value(m, "exp", "1e400"),
    "nbf_minus_infinity": lambda m: _raw_value(m, "nbf", "-Infinity"),
    "duplicate_claim_last_wins": lambda m: _raw_claims(m, '"sub":"someone-else"'),
    "duplicate_header_parameter": lambda m: _raw(
        m, b'{"typ":"JWT",' + dumps(m.header)[1:], dumps(m.claims)
    ),
    "lone_surrogate_claim": lambda m: _raw_value(m, "preferred_username", '"\\ud800"'),
    "lone_surrogate_header": lambda m: _raw(
        m, dumps(m.header)[:-1] + b',"typ":"at+jwt\\udfff"}', dumps(m.claims)
    ),
    "jwe_shaped_five_parts": lambda m: m.token + ".a.b",
    "header_not_json": lambda m: b64encode(b"{alg") + "." + m.token.split(".", 1)[1],
    "payload_is_a_list": lambda m: sign(m.key, m.header, [m.claims]),  # type: ignore[arg-type]
    "oversize_token": lambda m: m.token + "A" * 9000,
    "non_ascii_token": lambda m: ("Bearer " + m.token + "é").encode("utf-8"),
    "non_utf8_bytes": lambda m: b"Bearer \xff\xfe\xfd" + m.token.encode(),
    "two_tokens": lambda m: f"Bearer {m.token} {m.other}",
}


def _authorization(value: str | bytes) -> bytes:
    if isinstance(value, bytes):
        return value
    return (
        value.encode("latin-1")
        if value.startswith("Bearer")
        else b"Bearer " + value.encode()
    )


async def _backend_me(request: Request) -> Response:
    try:
        p = require_auth(request)
    except OAuthError as exc:
        return error_response(exc)
    return JSONResponse({"sub": p.subject})


@pytest.fixture
async def targets(
    service: Service,
) -> AsyncIterator[tuple[Material, dict[str, httpx.AsyncClient]]]:
    rt = service.runtime
    grant = await service.password_grant()
    other = await service.password_grant()
    now = service.clock()
    key = rt.ring.signing_key(now)
    assert key is not None
    jwks = (await service.client.get("/.well-known/jwks.json")).json()
    material = Material(
        grant["access_token"],
        other["access_token"],
        grant["refresh_token"],
        key,
        jwks["keys"][0],
        now,
    )
    issuer = rt.settings.issuer
    jwks_url = "http://testserver/.well-known/jwks.json"
    async with example_app(
        issuer, client=service.client, jwks_url=jwks_url, clock=service.clock
    ) as ex:
        backend = SilentAuthBackend(
            TokenAuthenticator.from_issuer(
                issuer, client=service.client, jwks_url=jwks_url, clock=service.clock
            )
        )
        plain = Starlette(
            routes=[Route("/me", _backend_me)],
            middleware=[
                Middleware(
                    AuthenticationMiddleware,
                    backend=backend,
                    on_error=SilentAuthBackend.on_error,
                )
            ],
        )
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=plain), base_url="http://plain"
        ) as pc:
            yield (
                material,
                {
                    "service:/api/me": service.client,
                    "example:/whoami": ex.client,
                    "backend:/me": pc,
                },
            )


PATHS = {
    "service:/api/me": "/api/me",
    "example:/whoami": "/whoami",
    "backend:/me": "/me",
}


@pytest.mark.anyio
async def test_valid_token_is_accepted_by_every_verifier(targets: Any) -> None:
    material, clients = targets
    for name, client in clients.items():
        r = await client.get(
            PATHS[name], headers={"Authorization": f"Bearer {material.token}"}
        )
        assert r.status_code == 200, (name, r.text)
        # The test's own signer makes acceptable tokens: refusals below are due to the attack.
        resigned = sign(material.key, material.header, material.claims)
        r = await client.get(
            PATHS[name], headers={"Authorization": f"Bearer {resigned}"}
        )
        assert r.status_code == 200, (name, r.text)


@pytest.mark.anyio
@pytest.mark.parametrize("case", sorted(CASES))
async def test_hostile_token_is_refused_with_401_by_every_verifier(
    case: str, targets: Any
) -> None:
    material, clients = targets
    header = _authorization(CASES[case](material))
    for name, client in clients.items():
        r = await client.get(PATHS[name], headers={"Authorization": header})
        assert r.status_code == 401, (name, r.status_code, r.text)
        assert r.headers["www-authenticate"].startswith("Bearer"), name
        assert r.json()["error"] in ("invalid_token", "unauthorized"), name


@pytest.mark.anyio
@pytest.mark.parametrize("header", ["Bearer", "Bearer ", "Bearer    ", "bearer \t"])
async def test_bearer_scheme_without_a_token_is_400_invalid_request_everywhere(
    header: str, targets: Any
) -> None:
    """RFC 6750 §3.1: a malformed request is 400 ``invalid_request``, not 401 ``invalid_token``."""
    _, clients = targets
    for name, client in clients.items():
        r = await client.get(PATHS[name], headers={"Authorization": header})
        assert r.status_code == 400, (name, r.status_code, r.text)
        assert r.json()["error"] == "invalid_request", name
        assert r.headers["www-authenticate"].startswith('Bearer error="invalid_request"'), name
