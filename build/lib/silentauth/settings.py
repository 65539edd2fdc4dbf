"""Settings: one frozen dataclass, filled from ``SILENTAUTH_*`` and flags.

Every field can be set as ``SILENTAUTH_<FIELD NAME IN CAPITALS>``; a CLI flag
wins over the environment. A malformed value raises :class:`ConfigError`
naming the setting, which the CLI turns into one line and exit code 2.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from silentauth.errors import ConfigError

_RATE = re.compile(r"^\s*(\d+)\s*/\s*(second|minute|hour|day)\s*$")
_PERIOD = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")


@dataclass(frozen=True)
class Rate:
    """``limit`` events per ``window`` seconds."""

    limit: int
    window: int

    @classmethod
    def parse(cls, name: str, text: str) -> Rate | None:
        """Parse ``"10/minute"``; ``"off"`` disables the limit (``None``)."""
        if text.strip().lower() in ("off", "none", "0", ""):
            return None
        m = _RATE.match(text.lower())
        if not m or int(m.group(1)) < 1:
            raise ConfigError(name, f"{text!r} is not a rate like '10/minute' or 'off'")
        return cls(int(m.group(1)), _PERIOD[m.group(2)])

    def __str__(self) -> str:
        period = {v: k for k, v in _PERIOD.items()}[self.window]
        return f"{self.limit}/{period}"


def parse_policy(name: str, text: str) -> dict[str, int]:
    """Parse ``"payments=300,admin=600"``: scope -> access-token lifetime (s)."""
    out: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        scope, sep, seconds = part.partition("=")
        if not sep or not scope.strip() or not seconds.strip().isdigit():
            raise ConfigError(name, f"{part!r} is not 'scope=seconds'")
        if int(seconds) < 1:
            raise ConfigError(name, f"lifetime for {scope!r} must be at least 1 s")
        out[scope.strip()] = int(seconds)
    return out


_ORIGIN = re.compile(r"^(https?)://([a-z0-9.-]+|\[[0-9a-f:.]+\])(?::(\d{1,5}))?$")
_DEFAULT_PORT = {"http": "80", "https": "443"}


def normalize_origin(text: str) -> str:
    """``text`` as browsers serialize an ``Origin`` (RFC 6454 §6.2), or :class:`ConfigError`.

    Lower case, no default port, no trailing slash: the form a browser sends, so
    a listed origin is compared with the header byte for byte. ``*`` and paths
    are refused: credentialed CORS needs each origin named exactly.
    """
    m = _ORIGIN.match(text.strip().lower().removesuffix("/"))
    if not m:
        raise ConfigError("CORS_ORIGINS", f"{text!r} is not an origin like 'https://app.example.com'")
    scheme, host, port = m.groups()
    if port is not None and not 0 < int(port) < 65536:
        raise ConfigError("CORS_ORIGINS", f"{text!r} has no valid port")
    keep_port = port is not None and int(port) != int(_DEFAULT_PORT[scheme])
    return f"{scheme}://{host}:{int(port)}" if keep_port else f"{scheme}://{host}"


def normalize_network(text: str) -> str:
    """``text`` (an address or a CIDR block) as a network, or :class:`ConfigError`.

    Host bits are dropped (``10.1.2.3/8`` is ``10.0.0.0/8``), as nginx's
    ``set_real_ip_from`` reads it; an IPv4 address in IPv6 form is stored as IPv4
    so it matches the peer address the server reports.
    """
    try:
        net = ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise ConfigError(
            "TRUSTED_PROXIES", f"{text!r} is not an address or a CIDR block like '10.0.0.0/8'"
        ) from None
    if isinstance(net, ipaddress.IPv6Network) and net.network_address.ipv4_mapped and net.prefixlen >= 96:
        net = ipaddress.ip_network(f"{net.network_address.ipv4_mapped}/{net.prefixlen - 96}")
    return str(net)


def origin_of(url: str) -> str | None:
    """The origin (``scheme://host[:port]``) of an http(s) URL, or ``None``."""
    m = re.match(r"^(https?://[^/?#]+)", url.strip(), re.IGNORECASE)
    if not m:
        return None
    try:
        return normalize_origin(m.group(1))
    except ConfigError:
        return None


SHARED_STORES = ("postgresql", "postgres", "redis", "rediss", "redis+cluster", "rediss+cluster")
PROXY_HEADERS = ("x-forwarded", "forwarded")
# The names of silentauth.core.rotation_rules.RULES (settings import nothing from core).
ROTATION_RULES = ("grace", "burst", "until_used", "late_once")


@dataclass(frozen=True)
class Settings:
    """Everything the service can be told. Durations are in seconds."""

    host: str = "127.0.0.1"
    port: int = 8000
    database_url: str = "sqlite:///silentauth.db"
    demo: bool = False
    access_ttl: int = 900
    refresh_idle_ttl: int = 7 * 86400
    session_max_age: int = 30 * 86400
    reuse_grace: float = 10.0
    # Which already-rotated refresh tokens are still honoured (core/rotation_rules.py);
    # empty: burst, or grace in demo mode, whose page stages a theft by replaying the
    # replaced token after the grace window before its successor is used.
    rotation_rule: str = ""
    ttl_jitter: float = 0.1
    # The first access token of a session is shortened by up to this fraction, so a
    # login wave turns into an even refresh load from the first refresh on.
    first_token_spread: float = 0.9
    renew_within: int = 60
    step_up_max_age: int = 300
    issuer: str = ""
    audience: str = "silentauth"
    rate_limit_login: Rate | None = Rate(10, 60)
    rate_limit_refresh: Rate | None = Rate(60, 60)
    # How long a device that logged in keeps its own login allowance (see core/devices.py).
    known_device_ttl: int = 180 * 86400
    # Scope -> access lifetime; the shortest matching entry wins (risk-based).
    token_policy: Mapping[str, int] = field(default_factory=lambda: {"payments": 300})
    secret_key: str = ""
    secret_key_file: str = ""
    cookie_secure: bool = True
    revocation_poll: float = 0.5
    key_lifetime: int = 90 * 86400
    # A new key is published this long before it signs, so verifiers that cache
    # the JWKS (ours refetch on an unknown kid at most every 10 s) hold it in time.
    key_prepublish: int = 60
    # No "openid": no ID token is issued (OpenID Connect Core 1.0 §3.1.2.1 would demand one).
    scope: str = "profile api"
    # RFC 8707 resource indicators (absolute URIs) a login may ask tokens for;
    # each becomes the tokens' ``aud``. Empty: every token carries ``audience``.
    resources: tuple[str, ...] = ()
    # Origins (scheme://host[:port]) whose pages may call this service with credentials.
    cors_origins: tuple[str, ...] = ()
    # How long a browser may cache a CORS preflight answer (Chromium caps it at 7200 s).
    cors_max_age: int = 600
    # Peers (addresses or CIDR blocks) whose forwarding headers name the client.
    trusted_proxies: tuple[str, ...] = ()
    # Which forwarding headers those proxies set: X-Forwarded-For/-Proto or RFC 7239 Forwarded.
    proxy_headers: str = "x-forwarded"
    log_level: str = "info"
    # One line per request (uvicorn's access log); off by default: it is one write per refresh.
    access_log: bool = False
    # Processes accepting on the one port, each with its own batcher and revocation set.
    workers: int = 1
    # On SIGTERM, how long requests in flight may take before they are cut off.
    drain_timeout: float = 30.0
    # The shortest password `users add` and `users passwd` accept.
    min_password_length: int = 8
    # Bring your own users: 'package.module:attribute' naming an IdentityProvider
    # (silentauth.core.identity); empty means the built-in user table.
    identity: str = ""
    # Seconds an identity provider, claims hook or lifetime hook may take before
    # the login or refresh answers 503.
    identity_timeout: float = 5.0
    # 'module:attr' of an async claims hook and of a lifetime hook (silentauth.core.hooks).
    claims_hook: str = ""
    lifetime_hook: str = ""
    # The application's claims, serialized, may take at most this many bytes per token.
    claims_max_bytes: int = 2048
    # The secret that authenticates the application's back end on /auth/service/*;
    # empty disables those endpoints (404).
    service_credential: str = field(default="", repr=False)
    # Live sessions a user may hold; the oldest ends when a new one would exceed it (0: no limit).
    max_sessions_per_user: int = 0
    # One live session per user: a login ends the others (max_sessions_per_user=1).
    single_session: bool = False
    # Absolute lifetime of a session logged in without "remember me".
    short_session_max_age: int = 86400

    @property
    def session_limit(self) -> int:
        """Live sessions allowed per user (0: no limit); ``single_session`` means 1."""
        return 1 if self.single_session else self.max_sessions_per_user

    def __post_init__(self) -> None:
        def need(ok: bool, name: str, msg: str) -> None:
            if not ok:
                raise ConfigError(name.upper(), msg)

        need(0 < self.port < 65536, "port", f"{self.port} is not a TCP port")
        need(self.access_ttl >= 1, "access_ttl", "must be at least 1 second")
        need(self.refresh_idle_ttl >= 1, "refresh_idle_ttl", "must be at least 1 second")
        need(self.session_max_age >= 1, "session_max_age", "must be at least 1 second")
        need(self.reuse_grace >= 0, "reuse_grace", "must not be negative")
        if not self.rotation_rule:
            object.__setattr__(self, "rotation_rule", "grace" if self.demo else "burst")
        need(
            self.rotation_rule in ROTATION_RULES,
            "rotation_rule",
            f"{self.rotation_rule!r}: use one of {', '.join(ROTATION_RULES)}",
        )
        need(0 <= self.ttl_jitter < 1, "ttl_jitter", "must be a fraction in [0, 1)")
        need(
            0 <= self.first_token_spread < 1,
            "first_token_spread",
            "must be a fraction in [0, 1)",
        )
        need(self.renew_within >= 0, "renew_within", "must not be negative")
        need(self.step_up_max_age >= 1, "step_up_max_age", "must be at least 1 second")
        need(self.revocation_poll > 0, "revocation_poll", "must be positive")
        need(self.key_lifetime >= 60, "key_lifetime", "must be at least 60 seconds")
        need(self.key_prepublish >= 0, "key_prepublish", "must not be negative")
        need(self.known_device_ttl >= 1, "known_device_ttl", "must be at least 1 second")
        object.__setattr__(self, "log_level", self.log_level.strip().lower())
        need(
            self.log_level in LOG_LEVELS,
            "log_level",
            f"{self.log_level!r}: use one of {', '.join(LOG_LEVELS)}",
        )
        need(1 <= self.workers <= 256, "workers", f"{self.workers} is not between 1 and 256")
        need(self.drain_timeout >= 0, "drain_timeout", "must not be negative")
        need(self.min_password_length >= 1, "min_password_length", "must be at least 1")
        need(self.cors_max_age >= 0, "cors_max_age", "must not be negative")
        need(self.identity_timeout > 0, "identity_timeout", "must be positive")
        need(self.claims_max_bytes >= 16, "claims_max_bytes", "must be at least 16 bytes")
        need(self.max_sessions_per_user >= 0, "max_sessions_per_user", "must not be negative")
        need(self.short_session_max_age >= 1, "short_session_max_age", "must be at least 1 second")
        need(
            not self.service_credential or len(self.service_credential) >= 32,
            "service_credential",
            "must be at least 32 characters (or empty to disable /auth/service)",
        )
        object.__setattr__(self, "cors_origins", tuple(normalize_origin(o) for o in self.cors_origins))
        object.__setattr__(self, "trusted_proxies", tuple(normalize_network(n) for n in self.trusted_proxies))
        object.__setattr__(self, "proxy_headers", self.proxy_headers.strip().lower())
        need(
            self.proxy_headers in PROXY_HEADERS,
            "proxy_headers",
            f"{self.proxy_headers!r}: use 'x-forwarded' (X-Forwarded-For/-Proto) or 'forwarded' (RFC 7239)",
        )
        for resource in self.resources:
            # RFC 8707 §2: an absolute URI without a fragment.
            need(
                "://" in resource and "#" not in resource and " " not in resource,
                "resources",
                f"{resource!r} is not an absolute URI without a fragment",
            )
        scheme = self.database_url.partition("://")[0]
        need(
            scheme in ("sqlite", *SHARED_STORES),
            "database_url",
            f"{self.database_url!r}: use sqlite:///path, postgresql://…, redis://… or redis+cluster://…",
        )
        # The default issuer names this instance's own host and port, so instances
        # sharing a store would each refuse the others' access tokens (401).
        need(
            bool(self.issuer) or scheme not in SHARED_STORES,
            "issuer",
            "required with a shared store: every instance must name the same public URL (e.g. https://auth.example.com)",
        )
        if not self.issuer:
            object.__setattr__(self, "issuer", f"http://{self.host}:{self.port}")

    @property
    def public_origin(self) -> str | None:
        """The origin browsers address the service at: the ``ISSUER``'s.

        The issuer is the URL the service is published at (its JWKS is
        ``{issuer}/.well-known/jwks.json``), so behind a TLS-terminating proxy it
        names the ``https`` origin the browser's pages come from, while the
        request that reaches the service is plain HTTP.
        """
        return origin_of(self.issuer)

    @classmethod
    def load(
        cls,
        env: Mapping[str, str] | None = None,
        overrides: Mapping[str, Any] | None = None,
    ) -> Settings:
        """Build settings from ``SILENTAUTH_*`` variables, then ``overrides``."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            raw = env.get(f"SILENTAUTH_{f.name.upper()}")
            if raw is not None:
                values[f.name] = _convert(f.name, f.type, raw)
        for key, value in (overrides or {}).items():
            if value is None:
                continue
            ftype = next(f.type for f in dataclasses.fields(cls) if f.name == key)
            values[key] = _convert(key, ftype, value) if isinstance(value, str) else value
        if values.get("demo"):
            # Demo mode: lifetimes short enough to watch refresh happen.
            values.setdefault("access_ttl", 30)
            values.setdefault("renew_within", 10)
        return cls(**values)


def _convert(name: str, ftype: Any, raw: str) -> Any:
    t = str(ftype)
    try:
        if t == "bool":
            low = raw.strip().lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(raw)
        if t == "int":
            return int(raw)
        if t == "float":
            return float(raw)
        if t.startswith("Rate"):
            return Rate.parse(name.upper(), raw)
        if t.startswith("Mapping"):
            return parse_policy(name.upper(), raw)
        if t.startswith("tuple"):
            return tuple(p.strip() for p in raw.split(",") if p.strip())
    except (ValueError, TypeError):
        raise ConfigError(name.upper(), f"{raw!r} is not a valid {t}") from None
    return raw
