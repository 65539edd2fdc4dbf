"""``TokenSet``: the grant a client holds, and when its access token is due.

Everything here is pure (no I/O, no locks), so the decisions the client makes
are testable on their own and shared by the sync, async and requests paths.

Expiry is kept in *local* clock time. When the access token is a JWT, its
lifetime is taken as ``exp - iat`` and counted from the moment the response
arrived, so a client whose clock is minutes off the server's still refreshes
on time; ``expires_in`` (RFC 6749 §5.1) is the fallback for opaque tokens.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import secrets
from dataclasses import asdict, dataclass, replace
from typing import Any

# A token that says nothing about its lifetime is refreshed only on a 401.
UNKNOWN_EXPIRY = math.inf


def unverified_claims(token: str) -> dict[str, Any]:
    """The JWT payload without any check, or ``{}`` when the token is opaque.

    .. warning:: Only for scheduling. Nothing here is trusted for authorization:
       the server verifies the signature; the client merely reads ``exp``.
    """
    parts = token.split(".")
    if len(parts) != 3:
        return {}
    segment = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        value = json.loads(base64.urlsafe_b64decode(segment.encode("ascii")))
    except (ValueError, binascii.Error, UnicodeError):
        return {}
    return value if isinstance(value, dict) else {}


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def token_lifetime(access_token: str, expires_in: Any, now: float) -> float:
    """Seconds the access token lives from ``now`` (receipt), skew tolerant."""
    claims = unverified_claims(access_token)
    exp, iat = _number(claims.get("exp")), _number(claims.get("iat"))
    if exp is not None and iat is not None and exp > iat:
        return exp - iat
    seconds = _number(expires_in)
    if seconds is not None and seconds > 0:
        return seconds
    if exp is not None:
        # No iat and no expires_in: the absolute exp is all we have.
        return max(0.0, exp - now)
    return UNKNOWN_EXPIRY


@dataclass(frozen=True)
class TokenSet:
    """One grant as the client keeps it; times are local epoch seconds."""

    access_token: str
    refresh_token: str | None
    issued_at: float
    expires_at: float
    token_type: str = "Bearer"  # noqa: S105 - a scheme name, not a secret
    scope: str | None = None
    # The Idempotency-Key of a refresh of ``refresh_token`` that was started but
    # never answered: every retry of that refresh sends it, so the server hands
    # the same successor out again instead of taking the retry for a replay.
    # Persisted with the grant before the request leaves; a new grant has none.
    pending_key: str | None = None

    @classmethod
    def from_response(
        cls, body: dict[str, Any], now: float, previous: TokenSet | None = None
    ) -> TokenSet:
        """Build from an RFC 6749 §5.1 token response received at ``now``.

        A refresh response without ``refresh_token`` keeps the previous one
        (RFC 6749 §6 lets servers skip rotation).
        """
        access = body.get("access_token")
        if not isinstance(access, str) or not access:
            raise ValueError("token response without access_token")
        refresh = body.get("refresh_token")
        if not isinstance(refresh, str) or not refresh:
            refresh = previous.refresh_token if previous else None
        scope = body.get("scope")
        token_type = body.get("token_type")
        return cls(
            access_token=access,
            refresh_token=refresh,
            issued_at=now,
            expires_at=now + token_lifetime(access, body.get("expires_in"), now),
            token_type=token_type if isinstance(token_type, str) else "Bearer",
            scope=scope if isinstance(scope, str) else (previous.scope if previous else None),
        )

    def with_access_token(self, access_token: str, now: float) -> TokenSet:
        """This grant with a server-pushed access token (``New-Access-Token``)."""
        previous_lifetime = self.expires_at - self.issued_at
        lifetime = token_lifetime(access_token, None, now)
        if lifetime == UNKNOWN_EXPIRY and math.isfinite(previous_lifetime):
            lifetime = previous_lifetime
        return replace(self, access_token=access_token, issued_at=now, expires_at=now + lifetime)

    def with_pending_key(self) -> TokenSet:
        """This grant with an Idempotency-Key for its refresh (the existing one, if any).

        192 random bits, base64url: the server asks for at least 128.
        """
        return self if self.pending_key else replace(self, pending_key=secrets.token_urlsafe(24))

    def due(self, now: float, margin: float) -> bool:
        """True once fewer than ``margin`` seconds remain.

        The margin never exceeds half the token's lifetime, so short-lived
        tokens are not refreshed on every single request.
        """
        lifetime = self.expires_at - self.issued_at
        return now >= self.expires_at - min(margin, lifetime / 2)

    def expired(self, now: float) -> bool:
        return now >= self.expires_at

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if not math.isfinite(self.expires_at):
            data["expires_at"] = None
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TokenSet:
        expires_at = data.get("expires_at")
        return cls(
            access_token=str(data["access_token"]),
            refresh_token=data.get("refresh_token") or None,
            issued_at=float(data.get("issued_at") or 0.0),
            expires_at=UNKNOWN_EXPIRY if expires_at is None else float(expires_at),
            token_type=str(data.get("token_type") or "Bearer"),
            scope=data.get("scope"),
            pending_key=data.get("pending_key") or None,
        )
