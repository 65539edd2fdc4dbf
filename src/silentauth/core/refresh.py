"""Refresh tokens, derived rather than stored.

``v1.<session id>.<counter>.<mac>`` where ``mac = HMAC-SHA256(k, id "." counter)``
and ``k`` is derived from the master secret. The database holds only the
counter, so a leaked database yields no usable token, and the MAC is checked
before the store is touched, so forged tokens cost no database round trip.
"""

from __future__ import annotations

import hashlib
import hmac
import re

from silentauth.core.encoding import b64encode
from silentauth.core.keys import MasterKey
from silentauth.errors import InvalidGrant

PREFIX = "v1"
_BLOCK = hashlib.sha256().block_size
MAX_LENGTH = 256
_SHAPE = re.compile(r"v1\.([A-Za-z0-9_-]{16,64})\.(0|[1-9][0-9]{0,17})\.([A-Za-z0-9_-]{43})")


class RefreshTokens:
    """Formats and checks refresh tokens for (session id, counter) pairs."""

    def __init__(self, master: MasterKey) -> None:
        self._key = master.derive("silentauth refresh-token v1")
        # HMAC (RFC 2104) spelled out over two SHA-256 states keyed once:
        # H((K ^ opad) || H((K ^ ipad) || m)). Copying a hash state is cheap;
        # copying OpenSSL's HMAC context (hmac.HMAC.copy) costs twice as much,
        # and hmac.digest redoes the key schedule each call. Both run twice
        # per refresh (check the old token, issue the new one).
        block = self._key.ljust(_BLOCK, b"\0")  # a 32-byte key fits one 64-byte block
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in block))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in block))

    def _mac(self, session_id: str, counter: int) -> str:
        inner = self._inner.copy()
        inner.update(f"{session_id}.{counter}".encode())
        outer = self._outer.copy()
        outer.update(inner.digest())
        return b64encode(outer.digest())

    def issue(self, session_id: str, counter: int) -> str:
        return f"{PREFIX}.{session_id}.{counter}.{self._mac(session_id, counter)}"

    def parse(self, token: str) -> tuple[str, int]:
        """(session id, counter) of an authentic token; :class:`InvalidGrant` otherwise."""
        # The cap keeps the regex off huge inputs; _SHAPE alone matches at most
        # 130 characters, so moving the cap changes no answer (hence no mutate).
        m = _SHAPE.fullmatch(token) if len(token) <= MAX_LENGTH else None  # pragma: no mutate
        if m is None:
            raise InvalidGrant("The refresh token is malformed.")
        session_id, counter = m.group(1), int(m.group(2))
        if not hmac.compare_digest(m.group(3), self._mac(session_id, counter)):
            raise InvalidGrant("The refresh token is invalid.")
        return session_id, counter

    def csrf_token(self, session_id: str) -> str:
        """A CSRF proof bound to the session, so a tossed cookie cannot forge it."""
        return b64encode(hmac.digest(self._key, f"csrf.{session_id}".encode(), hashlib.sha256))

    def check_csrf(self, session_id: str, proof: str) -> bool:
        return hmac.compare_digest(proof.encode(), self.csrf_token(session_id).encode())
