"""Access tokens: JWTs per RFC 9068, minted and verified with a pinned algorithm.

Verification follows RFC 8725: the algorithm list is fixed (``ES256`` only),
the header's ``alg`` must match the key's, ``typ`` must be ``at+jwt``, and the
key comes from our ring by ``kid`` — never from ``jku``, ``jwk`` or ``x5u``
headers — so ``alg=none`` and HS/RS confusion cannot be expressed at all.
"""

from __future__ import annotations

import functools
import os
import secrets
from collections.abc import Callable, Mapping
from typing import Any

from silentauth.core.encoding import b64decode, b64encode, dumps, json_string, loads
from silentauth.core.keys import ALG, KeyRing, SigningKey
from silentauth.errors import InvalidToken, UnknownKeyId

MAX_TOKEN_LENGTH = 8192
ALLOWED_ALGS = frozenset({ALG})
REQUIRED_CLAIMS = ("iss", "sub", "aud", "exp", "iat", "jti", "sid", "scope", "auth_time", "client_id")
_TYP = {"at+jwt", "application/at+jwt"}
# What registered_claims() writes; every access token carries all of them.
REGISTERED_CLAIMS = frozenset({*REQUIRED_CLAIMS, "preferred_username"})


@functools.lru_cache(maxsize=64)
def _header(kid: str) -> str:
    return b64encode(dumps({"alg": ALG, "kid": kid, "typ": "at+jwt"}))


def mint(key: SigningKey, claims: dict[str, Any]) -> str:
    """Sign ``claims`` as an RFC 9068 access token with ``key``."""
    return mint_json(key, dumps(claims))


def mint_json(key: SigningKey, payload: bytes) -> str:
    """Sign ``payload``, a claims object already encoded as JSON, with ``key``."""
    signing_input = f"{_header(key.kid)}.{b64encode(payload)}"
    signature = key.sign(signing_input.encode("ascii"))  # pragma: no mutate - codec names ignore case
    return f"{signing_input}.{b64encode(signature)}"


_string = json_string


def access_claims(members: bytes, custom: Mapping[str, Any] | None = None) -> bytes:
    """The claims object of an access token as JSON: ``custom`` claims, then ``members``.

    ``members`` come from :func:`registered_claims`; a custom claim of the same
    name is dropped, so an application's claims never stand in for them.
    """
    kept = {k: v for k, v in custom.items() if k not in REGISTERED_CLAIMS} if custom else None
    if not kept:
        return b"{" + members + b"}"
    return dumps(kept)[:-1] + b"," + members + b"}"


def registered_claims(
    *,
    iss: str,
    sub: str,
    aud: str | list[str],
    exp: int,
    iat: int,
    jti: str,
    sid: str,
    scope: str,
    auth_time: int,
    client_id: str,
    preferred_username: str,
) -> bytes:
    """The members of the registered claims object, without its braces.

    The same bytes :func:`~silentauth.core.encoding.dumps` gives for this
    dict (compact, ASCII), spelled out: the generic encoder sets up a new C
    encoder and walks a dict per token, a third of the JSON's cost here.
    ``:d`` refuses a float (or a string) where a NumericDate must be an integer.
    """
    # The list encoder spells a lone string the same way: the test is a shortcut only.
    audience = _string(aud) if isinstance(aud, str) else _compact_list(aud)  # pragma: no mutate
    members = (
        f'"iss":{_string(iss)},"sub":{_string(sub)},"aud":{audience},"exp":{exp:d},"iat":{iat:d},'
        f'"jti":{_string(jti)},"sid":{_string(sid)},"scope":{_string(scope)},"auth_time":{auth_time:d},'
        f'"client_id":{_string(client_id)},"preferred_username":{_string(preferred_username)}'
    )
    return members.encode("ascii")  # pragma: no mutate - codec names ignore case


def _compact_list(values: list[str]) -> str:
    return dumps(values).decode("ascii")  # pragma: no mutate - codec names ignore case


_JTI_BYTES = 12  # 96 random bits: a jti need only be unique
_JTI_CHARS = 16  # base64url of 12 bytes, no padding
_JTI_BATCH = 256
_jtis: list[str] = []
# A forked worker must not hand out the jtis its parent drew already.
os.register_at_fork(after_in_child=_jtis.clear)


def new_jti() -> str:
    """A fresh random token id (RFC 7519 §4.1.7): 96 bits, base64url.

    Drawn from the OS 256 at a time: one ``getrandom`` call per token cost more
    than the rest of the claims together. 12 bytes are 16 characters exactly,
    so the ids are plain slices of one encoded draw.
    """
    if not _jtis:
        text = b64encode(secrets.token_bytes(_JTI_BYTES * _JTI_BATCH))
        _jtis.extend(text[i : i + _JTI_CHARS] for i in range(0, len(text), _JTI_CHARS))
    return _jtis.pop()


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
