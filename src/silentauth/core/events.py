"""What the core reports as it works: a typed protocol, so a typo cannot hide.

The session service calls one method per kind of event with an outcome drawn
from a closed :data:`~typing.Literal` set; mypy rejects an outcome outside it.
The server's Prometheus metrics implement :class:`SessionEvents`; so do the
storm simulator's counters and the tests' recorders.
"""

from __future__ import annotations

from typing import Literal, Protocol, get_args

LoginOutcome = Literal["ok", "bad_credentials", "rate_limited", "unavailable"]
# ``retried``: a late token whose request carried the Idempotency-Key of the rotation
# it made (core/idempotency.py) got the same successor again.
RefreshOutcome = Literal["rotated", "grace", "reuse_detected", "expired", "invalid", "retried"]
RevokeReason = Literal["logout", "logout_all", "device", "reuse", "admin", "policy", "password_change"]

LOGIN_OUTCOMES: tuple[LoginOutcome, ...] = get_args(LoginOutcome)
REFRESH_OUTCOMES: tuple[RefreshOutcome, ...] = get_args(RefreshOutcome)
REVOKE_REASONS: tuple[RevokeReason, ...] = get_args(RevokeReason)


class SessionEvents(Protocol):
    """Receives the session service's events; every method must return quickly.

    They run on the hot path, inside the request, so an implementation only
    counts: no I/O, no awaiting.
    """

    def on_login(self, outcome: LoginOutcome) -> None:
        """A password login ended with ``outcome``."""

    def on_refresh(self, outcome: RefreshOutcome) -> None:
        """A refresh-token grant ended with ``outcome``."""

    def on_revoke(self, reason: RevokeReason) -> None:
        """One session was revoked (one call per session)."""

    def on_renewal(self) -> None:
        """A fresh access token was pushed to a client (``New-Access-Token``)."""

    def on_batch(self, size: int) -> None:
        """One store call rotated ``size`` refreshes together."""


class NoEvents:
    """A :class:`SessionEvents` that ignores everything (the default)."""

    def on_login(self, outcome: LoginOutcome) -> None:
        """Ignored."""

    def on_refresh(self, outcome: RefreshOutcome) -> None:
        """Ignored."""

    def on_revoke(self, reason: RevokeReason) -> None:
        """Ignored."""

    def on_renewal(self) -> None:
        """Ignored."""

    def on_batch(self, size: int) -> None:
        """Ignored."""
