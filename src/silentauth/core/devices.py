"""Known-device tokens: proof that this device logged in as this user before.

Password guessing is limited per (user, address) and per address. Alone,
those limits hand an attacker a way to lock a user out: guess wrong ten times
from a campus NAT or an office proxy and the real owner, behind the same
address, is refused too. OWASP's answer (Authentication Cheat Sheet, "Account
Lockout"; the "device cookie" proposal it links) is a device token handed out
at a successful login: a later login that presents it for the same user is
counted against that device alone, so the owner keeps logging in while the
attacker — who never logged in, hence holds no token for the account — stays
under the address limits.

``d1.<device id>.<issued at>.<mac>`` with ``mac = HMAC-SHA256(k, user "\\0"
device id "\\0" issued at)`` and ``k`` derived from the master secret: nothing
is stored, a token for one user proves nothing for another, and a token
expires ``ttl`` seconds after it was issued (every successful login renews it).
"""

from __future__ import annotations

import hmac
import re
import secrets

from silentauth.core.encoding import b64encode
from silentauth.core.keys import MasterKey

PREFIX = "d1"
_SHAPE = re.compile(r"d1\.([A-Za-z0-9_-]{22})\.([0-9]{1,12})\.([A-Za-z0-9_-]{43})")


class KnownDevices:
    """Issues and checks device tokens for (normalized user name, device) pairs."""

    def __init__(self, master: MasterKey, ttl: int) -> None:
        self._key = master.derive("silentauth known-device v1")
        self._ttl = ttl

    def _mac(self, username: str, device_id: str, issued: int) -> str:
        message = f"{username}\0{device_id}\0{issued}".encode()
        return b64encode(hmac.digest(self._key, message, "sha256"))  # pragma: no mutate - digest names ignore case

    def issue(self, username: str, now: float, device_id: str | None = None) -> str:
        """A token for ``username`` on ``device_id`` (a new device when ``None``)."""
        device = device_id or secrets.token_urlsafe(16)
        issued = int(now)
        return f"{PREFIX}.{device}.{issued}.{self._mac(username, device, issued)}"

    def check(self, token: str | None, username: str, now: float) -> str | None:
        """The device id if ``token`` is an unexpired token for ``username``, else ``None``."""
        # The cap keeps the regex off huge inputs; _SHAPE alone matches at most 82
        # characters, so moving the cap changes no answer (hence no mutate).
        m = _SHAPE.fullmatch(token) if token and len(token) <= 128 else None  # pragma: no mutate
        if m is None:
            return None
        device, issued = m.group(1), int(m.group(2))
        # A little slack for instances whose clocks disagree by seconds.
        if not issued - 300 <= now < issued + self._ttl:
            return None
        if not hmac.compare_digest(m.group(3), self._mac(username, device, issued)):
            return None
        return device
