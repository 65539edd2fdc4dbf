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
MAX_LENGTH = 256
_SHAPE = re.compile(r"v1\.([A-Za-z0-9_-]{16,64})\.(0|[1-9][0-9]{0,17})\.([A-Za-z0-9_-]{43})")


class RefreshTokens:
    """Formats and checks refresh tokens for (session id, counter) pairs."""

    def __init__(self, master: MasterKey) -> None:
        self._key = master.derive("silentauth refresh-token v1")
        # The keyed state, made once: copying it skips the key schedule (two
        # hashed key blocks and OpenSSL's algorithm fetch) that hmac.digest
        # redoes per call; about half the cost of a MAC on OpenSSL 3.
        self._keyed = hmac.new(self._key, digestmod=hashlib.sha256)

    def _mac(self, session_id: str, counter: int) -> str:
        mac = self._keyed.copy()
        mac.update(f"{session_id}.{counter}".encode())
        return b64encode(mac.digest())

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
