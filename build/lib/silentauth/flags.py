"""Command-line flags generated from the :class:`~silentauth.settings.Settings` table.

Every setting is a flag (``access_ttl`` -> ``--access-ttl``) and a
``SILENTAUTH_*`` variable; the flag wins. The flags are added to the main
parser and to every subcommand, so they may come before or after it
(``silentauth --port 9000 serve`` and ``silentauth serve --port 9000``). A
flag absent from the command line sets nothing (``SUPPRESS``), so the
environment and the defaults still apply.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
from collections.abc import Mapping
from typing import Any

from silentauth.settings import Settings

PREFIX = "SILENTAUTH_"
_DEST = "setting_"

# What each setting means, shown by --help (the README's table says the same).
HELP: dict[str, str] = {
    "host": "address to listen on",
    "port": "TCP port to listen on",
    "database_url": "store: sqlite:///path, postgresql://…, redis://… or redis+cluster://…",
    "demo": "demo mode: user demo/demo, 30 s access tokens",
    "access_ttl": "access-token lifetime in seconds",
    "refresh_idle_ttl": "a session unused this many seconds ends",
    "session_max_age": "absolute session limit in seconds, never extended by rotation",
    "reuse_grace": "seconds during which a just-rotated refresh token still yields its successor",
    "rotation_rule": "which rotated refresh tokens are still honoured: grace, burst (default), until_used, late_once",
    "ttl_jitter": "every lifetime is shortened by a random fraction up to this",
    "first_token_spread": "a session's first access token is shortened by up to this fraction",
    "renew_within": "push New-Access-Token when less than this many seconds remain (0: off)",
    "step_up_max_age": "how recent (s) a login /api/payments demands",
    "issuer": "iss of access tokens (default http://HOST:PORT)",
    "audience": "aud of access tokens when no resource is named",
    "resources": "comma-separated RFC 8707 resource URIs a login or refresh may name; each becomes the aud",
    "rate_limit_login": "failed logins per user name + address, e.g. 10/minute, or off",
    "rate_limit_refresh": "rotations per session and forged refreshes per address (x10), or off",
    "known_device_ttl": "seconds a device token keeps its device's own login allowance",
    "token_policy": "risk-based lifetimes: scope=seconds,… (the shortest match wins)",
    "secret_key": "master secret (32+ bytes); prefer --secret-key-file",
    "secret_key_file": "file holding the master secret",
    "cookie_secure": "Secure, __Host- prefixed cookies (--no-cookie-secure for plain-HTTP development)",
    "revocation_poll": "seconds between revocation-feed polls",
    "key_lifetime": "seconds a signing key signs",
    "key_prepublish": "seconds a new key is published before it signs",
    "scope": "scopes a login may be granted",
    "cors_origins": "comma-separated origins whose pages may call the service with credentials",
    "cors_max_age": "seconds a browser may cache a CORS preflight answer",
    "trusted_proxies": "comma-separated addresses or CIDR blocks of reverse proxies whose forwarding headers are believed",
    "proxy_headers": "which forwarding headers those proxies set: x-forwarded or forwarded (RFC 7239)",
    "identity": "module:attr naming your identity provider (empty: the built-in user table)",
    "identity_timeout": "seconds the identity provider or a hook may take before 503",
    "claims_hook": "module:attr naming an async claims hook",
    "lifetime_hook": "module:attr naming a lifetime hook",
    "claims_max_bytes": "the hook's claims, as JSON, may take at most this many bytes per token",
    "service_credential": "secret for /auth/service/* (empty: those endpoints are off)",
    "max_sessions_per_user": "live sessions per user; a new one ends the oldest (0: no limit)",
    "single_session": "one live session per user: a login ends the others",
    "short_session_max_age": "absolute lifetime (s) of a login without remember me",
    "log_level": "critical, error, warning, info, debug or trace",
    "access_log": "log one line per request",
    "workers": "processes serving the one port",
    "drain_timeout": "seconds requests in flight may take after SIGTERM",
    "min_password_length": "shortest password users add / users passwd accept",
}

# Variables read by the test and bench harnesses, not by the service.
HARNESS_VARIABLES = frozenset(
    {
        "REQUIRE_SERVICES",
        "SOAK_SECONDS",
        "CRASH_ROUNDS",
        "STORM_USERNAME",
        "STORM_PASSWORD",
        "FUZZ_EXAMPLES",
        "BENCH_JWK",
    }
)


def setting_fields() -> list[dataclasses.Field[Any]]:
    """The settings, in table order."""
    return list(dataclasses.fields(Settings))


def _default(f: dataclasses.Field[Any]) -> str:
    if f.default is not dataclasses.MISSING:
        value = f.default
    elif f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
    else:
        return "-"
    if isinstance(value, Mapping):
        return ",".join(f"{k}={v}" for k, v in value.items()) or "none"
    if isinstance(value, tuple):
        return ",".join(value) or "none"
    if value is None:
        return "off"
    return str(value) if value != "" else "none"


def add_setting_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per setting, each with help, env twin and default in the help text."""
    group = parser.add_argument_group("settings (each also SILENTAUTH_<NAME>; a flag wins)")
    for f in setting_fields():
        flag = "--" + f.name.replace("_", "-")
        text = f"{HELP.get(f.name, 'see the settings table in the README')} ({PREFIX}{f.name.upper()}, default {_default(f)})"
        text = text.replace("%", "%%")
        if str(f.type) == "bool":
            group.add_argument(
                flag, dest=_DEST + f.name, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS, help=text
            )
        else:
            metavar = f.name.upper()
            group.add_argument(flag, dest=_DEST + f.name, metavar=metavar, default=argparse.SUPPRESS, help=text)


def overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The settings given as flags, by field name (strings; :meth:`Settings.load` converts them)."""
    return {k[len(_DEST) :]: v for k, v in vars(args).items() if k.startswith(_DEST)}


def unknown_variables(env: Mapping[str, str]) -> list[str]:
    """One warning per ``SILENTAUTH_*`` variable that no setting reads, with a guess."""
    known = {f.name.upper() for f in setting_fields()}
    warnings = []
    for var in sorted(env):
        if not var.startswith(PREFIX):
            continue
        name = var[len(PREFIX) :]
        if name in known or name in HARNESS_VARIABLES:
            continue
        guess = difflib.get_close_matches(name, sorted(known), n=1)
        hint = f" (did you mean {PREFIX}{guess[0]}?)" if guess else ""
        warnings.append(f"unknown variable {var} is ignored{hint}")
    return warnings
