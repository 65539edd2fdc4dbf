"""Prometheus metrics, one registry per app so that tests can run many apps."""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

REFRESH_OUTCOMES = ("rotated", "grace", "reuse_detected", "expired", "invalid")
LOGIN_OUTCOMES = ("ok", "bad_credentials", "rate_limited")
REVOKE_REASONS = ("logout", "logout_all", "device", "reuse", "admin")


class Metrics:
    """The refresh, login, renewal and revocation counters, plus a few gauges.

    Metric names are public: dashboards and alerts depend on them, so they
    change only with a release note.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.refresh = Counter(
            "silentauth_refresh", "Refresh attempts by outcome.", ["outcome"], registry=self.registry
        )
        self.login = Counter(
            "silentauth_login", "Login attempts by outcome.", ["outcome"], registry=self.registry
        )
        self.renewal = Counter(
            "silentauth_renewal", "Server-pushed New-Access-Token headers.", registry=self.registry
        )
        self.revoked = Counter(
            "silentauth_sessions_revoked", "Sessions revoked by reason.", ["reason"], registry=self.registry
        )
        self.refresh_batch = Histogram(
            "silentauth_refresh_batch_size",
            "Refreshes rotated together in one store call (one event-loop turn).",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128),
            registry=self.registry,
        )
        self.revocation_set = Gauge(
            "silentauth_revocation_set_size", "Sessions in the in-process revocation set.", registry=self.registry
        )

        # Label children resolved once: labels() costs more than the increment.
        self._children: dict[tuple[str, str], Counter] = {
            **{("refresh", o): self.refresh.labels(o) for o in REFRESH_OUTCOMES},
            **{("login", o): self.login.labels(o) for o in LOGIN_OUTCOMES},
            **{("revoked", r): self.revoked.labels(r) for r in REVOKE_REASONS},
        }

    def event(self, kind: str, outcome: str) -> None:
        """The core's event hook; unknown labels are dropped, never invented."""
        child = self._children.get((kind, outcome))
        if child is not None:
            child.inc()
        elif kind == "renewal":
            self.renewal.inc()

    def batch(self, size: int) -> None:
        """The core's batch hook: how many refreshes one rotation call carried."""
        self.refresh_batch.observe(size)

    def render(self) -> bytes:
        return generate_latest(self.registry)
