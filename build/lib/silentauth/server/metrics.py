"""Prometheus metrics, one registry per app so that tests can run many apps."""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from silentauth.core.events import (
    LOGIN_OUTCOMES,
    REFRESH_OUTCOMES,
    REVOKE_REASONS,
    LoginOutcome,
    RefreshOutcome,
    RevokeReason,
)


class Metrics:
    """The service's counters and gauges; receives the core's :class:`SessionEvents`.

    Every label value comes from the core's ``Literal`` sets, so each series
    exists (at zero) from the start and an unknown one cannot be invented.

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
        self._login = {o: self.login.labels(o) for o in LOGIN_OUTCOMES}
        self._refresh = {o: self.refresh.labels(o) for o in REFRESH_OUTCOMES}
        self._revoked = {r: self.revoked.labels(r) for r in REVOKE_REASONS}

    def on_login(self, outcome: LoginOutcome) -> None:
        """Count a login by outcome."""
        self._login[outcome].inc()

    def on_refresh(self, outcome: RefreshOutcome) -> None:
        """Count a refresh by outcome."""
        self._refresh[outcome].inc()

    def on_revoke(self, reason: RevokeReason) -> None:
        """Count one revoked session by reason."""
        self._revoked[reason].inc()

    def on_renewal(self) -> None:
        """Count one pushed access token."""
        self.renewal.inc()

    def on_batch(self, size: int) -> None:
        """How many refreshes one rotation call carried."""
        self.refresh_batch.observe(size)

    def render(self) -> bytes:
        """The registry in the Prometheus text format."""
        return generate_latest(self.registry)
