"""Access tokens: JWTs per RFC 9068, minted and verified with a pinned algorithm.

Verification follows RFC 8725: the algorithm list is fixed (``ES256`` only),
the header's ``alg`` must match the key's, ``typ`` must be ``at+jwt``, and the
key comes from our ring by ``kid`` — never from ``jku``, ``jwk`` or ``x5u``
headers — so ``alg=none`` and HS/RS confusion cannot be expressed at all.
"""

from __future__ import annotations

import functools
import secrets
from collections.abc import Callable
from typing import Any

from silentauth.core.encoding import b64decode, b64encode, dumps, loads
from silentauth.core.keys import ALG, KeyRing, SigningKey
from silentauth.errors import InvalidToken, UnknownKeyId

MAX_TOKEN_LENGTH = 8192
ALLOWED_ALGS = frozenset({ALG})
REQUIRED_CLAIMS = ("iss", "sub", "aud", "exp", "iat", "jti", "sid", "scope", "auth_time", "client_id")
_TYP = {"at+jwt", "application/at+jwt"}


@functools.lru_cache(maxsize=64)
def _header(kid: str) -> str:
    return b64encode(dumps({"alg": ALG, "kid": kid, "typ": "at+jwt"}))


def mint(key: SigningKey, claims: dict[str, Any]) -> str:
    """Sign ``claims`` as an RFC 9068 access token with ``key``."""
    header = _header(key.kid)
    payload = b64encode(dumps(claims))
    signing_input = f"{header}.{payload}".encode("ascii")  # pragma: no mutate - codec names ignore case
    return f"{header}.{payload}.{b64encode(key.sign(signing_input))}"


def new_jti() -> str:
    return secrets.token_urlsafe(12)  # pragma: no mutate - a jti need only be unique: 96 bits or more


def _segment(text: str) -> dict[str, Any]:
    # Canonical base64url and strict JSON: one token has exactly one spelling,
    # and "exp": NaN or a repeated "sub" never reach the claim checks.
    try:
        value = loads(b64decode(text))
    except ValueError as exc:
        raise InvalidToken("The access token is malformed.") from exc
    if not isinstance(value, dict):
        raise InvalidToken("The access token is malformed.")
    return value


def decode_unverified(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims without any check: for logging and tests only."""
    parts = token.split(".")
    if len(parts) != 3:
        raise InvalidToken("The access token is malformed.")
    return _segment(parts[0]), _segment(parts[1])


class AccessTokenVerifier:
    """Checks signature and claims of an access token against a key source.

    ``keys`` returns the key for a ``kid`` (or ``None``): a local
    :class:`KeyRing` lookup in the token service, a JWKS cache elsewhere.
    """

    def __init__(
        self,
        keys: Callable[[str, float], SigningKey | None],
        issuer: str,
        audience: str,
        leeway: float = 5.0,
    ) -> None:
        self._keys = keys
        self.issuer = issuer
        self.audience = audience
        self.leeway = leeway

    @classmethod
    def from_ring(cls, ring: Callable[[], KeyRing], issuer: str, audience: str) -> AccessTokenVerifier:
        return cls(lambda kid, now: ring().get(kid, now), issuer, audience)

    def verify(self, token: str, now: float) -> dict[str, Any]:
        """Return the claims of a valid token or raise :class:`InvalidToken`."""
        if not token or len(token) > MAX_TOKEN_LENGTH or not token.isascii():
            raise InvalidToken("The access token is malformed.")
        parts = token.split(".")
        if len(parts) != 3 or not all(parts):
            raise InvalidToken("The access token is malformed.")
        header = _segment(parts[0])
        if header.get("alg") not in ALLOWED_ALGS:
            raise InvalidToken("The access token's algorithm is not accepted.")
        typ = header.get("typ", "")  # pragma: no mutate - a missing typ fails whatever the default
        if str(typ).lower() not in _TYP:
            raise InvalidToken("The token is not an access token (typ must be at+jwt).")
        if header.keys() - {"alg", "kid", "typ"}:
            # crit, jku, jwk, x5u, x5c... are never honoured; refuse rather than ignore.
            raise InvalidToken("The access token carries unsupported header parameters.")
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise InvalidToken("The access token names no key (kid).")
        key = self._keys(kid, now)
        if key is None:
            raise UnknownKeyId(kid)
        try:
            signature = b64decode(parts[2])
        except ValueError:
            raise InvalidToken("The access token is malformed.") from None
        signing_input = f"{parts[0]}.{parts[1]}".encode("ascii")  # pragma: no mutate - codec case
        if not key.verify(signing_input, signature):
            raise InvalidToken("The access token's signature is invalid.")
        claims = _segment(parts[1])
        self.check_claims(claims, now)
        return claims

    def check_claims(self, claims: dict[str, Any], now: float) -> None:
        for name in REQUIRED_CLAIMS:
            if name not in claims:
                raise InvalidToken(f"The access token lacks the {name!r} claim.")
        for name in ("exp", "iat", "auth_time"):
            if not isinstance(claims[name], int | float) or isinstance(claims[name], bool):
                raise InvalidToken(f"The access token's {name!r} claim is not a number.")
        for name in ("sub", "sid", "scope", "jti", "client_id", "iss"):
            if not isinstance(claims[name], str):
                raise InvalidToken(f"The access token's {name!r} claim is not a string.")
        if claims["iss"] != self.issuer:
            raise InvalidToken("The access token was issued by someone else.")
        aud = claims["aud"]
        if not (aud == self.audience or (isinstance(aud, list) and self.audience in aud)):
            raise InvalidToken("The access token is meant for another audience.")
        if claims["exp"] <= now - self.leeway:
            raise InvalidToken("The access token has expired.")
        nbf = claims.get("nbf")
        if isinstance(nbf, int | float) and nbf > now + self.leeway:
            raise InvalidToken("The access token is not valid yet.")
        if claims["iat"] > now + self.leeway:
            raise InvalidToken("The access token was issued in the future.")
