"""Signing keys: a ring where the newest key signs and every unexpired key verifies.

Keys are ES256 (P-256): signing costs tens of microseconds, far less than
RSA, and every JOSE library and WebCrypto verify it. Private keys rest in the
store encrypted with AES-GCM under a key derived from the master secret,
which lives outside the database, so a leaked database yields no signing key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from silentauth.core.encoding import b64decode, b64encode
from silentauth.core.files import warn_if_exposed
from silentauth.core.ports import Store, StoredKey
from silentauth.errors import ConfigError

ALG = "ES256"
_SIG_LEN = 32
# Order of the P-256 group (SEC 2 §2.4.2). (r, s) and (r, n - s) are both valid
# ECDSA signatures of one message: only s <= n/2 is issued and accepted, so a
# token cannot be re-spelled by flipping s (the "low-S" rule of BIP 62).
_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
_HALF_N = _N // 2
_ES256 = ec.ECDSA(hashes.SHA256())  # immutable; built once rather than per signature


class MasterKey:
    """The server secret. Sub-keys for each purpose are derived with HMAC."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 32:
            raise ConfigError("SECRET_KEY", "must hold at least 32 bytes of entropy")
        self._secret = secret

    def derive(self, label: str) -> bytes:
        return hmac.new(self._secret, label.encode(), hashlib.sha256).digest()

    @classmethod
    def from_settings(cls, secret_key: str, secret_key_file: str, database_url: str) -> MasterKey:
        """From ``SECRET_KEY``, else ``SECRET_KEY_FILE``, else a file beside the SQLite db.

        The embedded default creates ``<db>.key`` (mode 0600) on first start;
        stores shared by several instances need the secret given explicitly.
        """
        if secret_key:
            # Accept a base64url secret (as `<db>.key` holds) or a long passphrase.
            try:
                raw = _configured_b64decode(secret_key)
            except ValueError:
                raw = b""  # pragma: no mutate - anything under 32 bytes falls back alike
            return cls(raw if len(raw) >= 32 else secret_key.encode())
        path = secret_key_file
        if not path:
            if not database_url.startswith("sqlite:"):
                raise ConfigError(
                    "SECRET_KEY",
                    "required with a shared store: every instance must hold the same secret",
                )
            db = database_url.partition("://")[2][1:] or "silentauth.db"
            path = (db if db != ":memory:" else "silentauth.db") + ".key"
        p = Path(path)
        if not p.exists():
            fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(b64encode(secrets.token_bytes(32)))  # pragma: no mutate - 32 is the default of token_bytes; the size is tested
        else:
            warn_if_exposed(p, "secret key file")
        try:
            raw = _configured_b64decode(p.read_text().strip())
        except ValueError:
            # A traceback would not say which setting is wrong.
            raise ConfigError("SECRET_KEY_FILE", f"{p} does not hold a base64url secret") from None
        return cls(raw)


def _configured_b64decode(text: str) -> bytes:
    """The secret as earlier releases read it: base64url, lenient about ``+/`` and spare bits.

    Unlike token segments, the secret is written by the operator, and reading
    it more strictly than before would derive another master key and leave
    every stored signing key undecryptable.
    """
    raw = text.encode("ascii")  # pragma: no mutate - codec names ignore case
    if b"=" in raw or len(raw) % 4 == 1:
        raise ValueError("not base64url")  # pragma: no mutate - both callers replace the text
    try:
        # The lenient decoder ignores surplus "=", so "+len" pads alike (no mutate); "% 4" is tested.
        return base64.urlsafe_b64decode(raw + b"=" * (-len(raw) % 4))  # pragma: no mutate
    except (binascii.Error, ValueError) as exc:
        raise ValueError("not base64url") from exc  # pragma: no mutate - both callers replace the text


@dataclass(frozen=True)
class SigningKey:
    kid: str
    public: ec.EllipticCurvePublicKey
    private: ec.EllipticCurvePrivateKey | None
    created_at: float
    not_after: float

    def sign(self, data: bytes) -> bytes:
        if self.private is None:
            raise ValueError(f"key {self.kid} has no private part")
        r, s = decode_dss_signature(self.private.sign(data, _ES256))
        # s == n // 2 exactly has a chance of 2^-256, so ">=" cannot be told from ">"
        # here; verify's side of the boundary is tested. to_bytes' default is "big".
        if s > _HALF_N:  # pragma: no mutate
            s = _N - s
        return r.to_bytes(_SIG_LEN, "big") + s.to_bytes(_SIG_LEN, "big")  # pragma: no mutate

    def verify(self, data: bytes, signature: bytes) -> bool:
        if len(signature) != 2 * _SIG_LEN:
            return False
        # "big" is from_bytes' default since 3.11, hence no mutate.
        r = int.from_bytes(signature[:_SIG_LEN], "big")  # pragma: no mutate
        s = int.from_bytes(signature[_SIG_LEN:], "big")  # pragma: no mutate
        if s > _HALF_N:
            return False
        try:
            self.public.verify(encode_dss_signature(r, s), data, _ES256)
        except InvalidSignature:
            return False
        return True

    def jwk(self) -> dict[str, Any]:
        nums = self.public.public_numbers()
        return {
            "kty": "EC",
            "crv": "P-256",
            "x": b64encode(nums.x.to_bytes(32, "big")),  # pragma: no mutate - "big" is to_bytes' default since 3.11
            "y": b64encode(nums.y.to_bytes(32, "big")),  # pragma: no mutate - "big" is to_bytes' default since 3.11
            "kid": self.kid,
            "alg": ALG,
            "use": "sig",
        }

    @classmethod
    def from_jwk(cls, jwk: dict[str, Any]) -> SigningKey:
        """A verify-only key from a public JWK; raises ValueError if unusable."""
        # The messages are diagnostics only (parse_jwks skips an unusable key whatever
        # they say), hence no mutation of their text.
        if jwk.get("kty") != "EC" or jwk.get("crv") != "P-256":
            raise ValueError("only EC P-256 keys are accepted")  # pragma: no mutate
        if "d" in jwk:
            raise ValueError("refusing a JWK that carries a private key")  # pragma: no mutate
        x, y = _coordinate(jwk, "x"), _coordinate(jwk, "y")
        public = ec.EllipticCurvePublicNumbers(x, y, ec.SECP256R1()).public_key()
        return cls(
            str(jwk["kid"]),
            public,
            None,
            0.0,  # pragma: no mutate - created_at only orders keys that can sign; this one cannot
            math.inf,
        )


def _coordinate(jwk: dict[str, Any], name: str) -> int:
    """An EC point coordinate of a JWK (RFC 7518 §6.2.1.2: big-endian base64url)."""
    return int.from_bytes(b64decode(str(jwk[name])), "big")  # pragma: no mutate - "big" is from_bytes' default since 3.11


class KeyRing:
    """The keys an instance holds: the newest started one signs, all unexpired verify.

    A key's ``created_at`` is when it starts signing. A key created ahead of
    that (see :class:`KeyManager`) is already published and verifies, so
    every JWKS cache holds it before the first token it signs arrives.
    """

    def __init__(self, keys: list[SigningKey], verify_grace: float) -> None:
        self._keys = sorted(keys, key=lambda k: k.created_at)
        self._by_kid = {k.kid: k for k in self._keys}
        self._verify_grace = verify_grace

    def signing_key(self, now: float) -> SigningKey | None:
        """The newest key that has started signing and not stopped."""
        for key in reversed(self._keys):
            if key.private is not None and key.created_at <= now < key.not_after:
                return key
        return None

    def upcoming(self, now: float) -> SigningKey | None:
        """A published key that will start signing after ``now``, if any."""
        later = [k for k in self._keys if k.private is not None and k.created_at > now]
        return later[-1] if later else None

    def get(self, kid: str, now: float) -> SigningKey | None:
        key = self._by_kid.get(kid)
        if key is None or key.not_after + self._verify_grace <= now:
            return None
        return key

    def jwks(self, now: float) -> dict[str, Any]:
        return {
            "keys": [k.jwk() for k in self._keys if k.not_after + self._verify_grace > now]
        }

    def __iter__(self) -> Any:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)


class KeyManager:
    """Loads, decrypts, creates and rotates keys kept in the store."""

    def __init__(
        self,
        store: Store,
        master: MasterKey,
        lifetime: float,
        verify_grace: float,
        prepublish: float = 0.0,
    ) -> None:
        self._store = store
        self._aead = AESGCM(master.derive("silentauth key-encryption v1"))
        self._lifetime = lifetime
        self._verify_grace = verify_grace
        # Bounded so that the successor is always made while the old key still signs.
        self.prepublish = min(prepublish, lifetime / 4)

    def _decrypt(self, stored: StoredKey) -> SigningKey:
        nonce, ct = stored.private_blob[:12], stored.private_blob[12:]
        der = self._aead.decrypt(nonce, ct, stored.kid.encode())
        private = serialization.load_der_private_key(der, password=None)
        if not isinstance(private, ec.EllipticCurvePrivateKey):
            raise TypeError(f"key {stored.kid} is not an EC private key")  # pragma: no mutate - diagnostic text
        return SigningKey(stored.kid, private.public_key(), private, stored.created_at, stored.not_after)

    async def _ring(self) -> KeyRing:
        return KeyRing([self._decrypt(k) for k in await self._store.list_keys()], self._verify_grace)

    async def load(self, now: float) -> KeyRing:
        """The ring as the store holds it, with a signing key now and a successor in time.

        No key can sign (a new store, or all expired): one is made that signs
        at once. The signing key ends within two pre-publication periods and
        none follows it yet: its successor is made, published now and signing
        one period from now, before the old key stops.
        """
        ring = await self._ring()
        signer = ring.signing_key(now)
        if signer is None:
            await self.rotate(now, starts=now)  # pragma: no mutate - rotate() reads now only when starts is None
        elif signer.not_after - now <= 2 * self.prepublish and ring.upcoming(now) is None:
            await self.rotate(now)
        else:
            return ring
        return await self._ring()

    async def rotate(self, now: float, starts: float | None = None) -> SigningKey:
        """Create a new key that signs from ``starts`` (default: one pre-publication
        period from now); until then it is published and verifies, and older
        keys keep verifying until they expire."""
        starts = now + self.prepublish if starts is None else starts
        private = ec.generate_private_key(ec.SECP256R1())
        kid = secrets.token_urlsafe(12)
        der = private.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        nonce = secrets.token_bytes(12)
        key = SigningKey(kid, private.public_key(), private, starts, starts + self._lifetime)
        await self._store.add_key(
            StoredKey(
                kid=kid,
                alg=ALG,
                private_blob=nonce + self._aead.encrypt(nonce, der, kid.encode()),
                public_jwk=json.dumps(key.jwk()),
                created_at=starts,
                not_after=starts + self._lifetime,
            )
        )
        return key
