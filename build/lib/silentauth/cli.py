"""``silentauth``: serve, users, keys, sessions, clients, storm, chaos.

Every setting is a flag and a ``SILENTAUTH_*`` variable (:mod:`silentauth.flags`);
the flag wins, before or after the subcommand. A bad setting prints one line
naming it and exits with status 2; an unknown ``SILENTAUTH_*`` variable is
warned about.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from silentauth import flags
from silentauth.errors import AlreadyExists, ConfigError, SilentAuthError
from silentauth.settings import Settings

if TYPE_CHECKING:
    # Imported when a command runs: `silentauth --help` must not load the server.
    from silentauth.server.runtime import Runtime


def _settings(args: argparse.Namespace) -> Settings:
    return Settings.load(overrides=flags.overrides(args))


class PasswordRefused(SilentAuthError):
    """A password the command line will not set (too short, no way to ask for it)."""


def read_password(args: argparse.Namespace, name: str, minimum: int) -> str:
    """The new password: from stdin with --password-stdin, else asked twice at a terminal."""
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif sys.stdin.isatty():
        password = getpass.getpass(f"password for {name}: ")
        if getpass.getpass("again: ") != password:
            raise PasswordRefused("the two passwords differ; nothing changed")
    else:
        raise PasswordRefused(
            f"no terminal to ask for the password: pipe it in with --password-stdin "
            f"(printf '%s\\n' \"$PASSWORD\" | silentauth users {args.action} {name} --password-stdin)"
        )
    if len(password) < minimum:
        raise PasswordRefused(
            f"the password is shorter than {minimum} characters (SILENTAUTH_MIN_PASSWORD_LENGTH); nothing changed"
        )
    return password


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


def cmd_serve(args: argparse.Namespace) -> int:
    from silentauth.server.serve import serve

    return serve(_settings(args))


async def _with_runtime(args: argparse.Namespace, job: Callable[[Runtime], Awaitable[int]]) -> int:
    from silentauth.clock import system_clock
    from silentauth.core.passwords import Passwords
    from silentauth.server.runtime import Runtime
    from silentauth.stores import open_store

    settings = _settings(args)
    rt = Runtime(settings, open_store(settings.database_url), system_clock, Passwords())
    await rt.store.open()
    try:
        return await job(rt)
    finally:
        await rt.store.close()


async def users_job(rt: Runtime, args: argparse.Namespace) -> int:
    """``users add|list|remove`` on an open runtime, through the core's :class:`Users`."""
    from silentauth.core.passwords import normalize_username
    from silentauth.errors import InvalidRequest

    if args.action in ("add", "passwd"):
        name = normalize_username(args.name)
        if args.action == "passwd" and await rt.users.get(name) is None:
            print(f"silentauth: no user {name!r}", file=sys.stderr)
            return 1
        try:
            password = read_password(args, name, rt.settings.min_password_length)
            if args.action == "passwd":
                revoked = await rt.users.set_password(name, password)
                if revoked is None:
                    print(f"silentauth: no user {name!r}", file=sys.stderr)
                    return 1
                print(f"new password for {name}; {revoked} session(s) revoked")
                return 0
            await rt.users.add(name, password)
        except (InvalidRequest, PasswordRefused) as exc:
            print(f"silentauth: {exc}", file=sys.stderr)
            return 2
        except AlreadyExists:
            print(f"silentauth: user {name!r} exists", file=sys.stderr)
            return 1
        print(f"added {name}")
    elif args.action == "list":
        for u in await rt.users.list():
            print(f"{u.username}\t{u.id}\t{_when(u.created_at)}")
    else:
        name = normalize_username(args.name)
        if not await rt.users.remove(name):
            print(f"silentauth: no user {name!r}", file=sys.stderr)
            return 1
        print(f"removed {name}")
    return 0


def cmd_users(args: argparse.Namespace) -> int:
    return asyncio.run(_with_runtime(args, lambda rt: users_job(rt, args)))


async def keys_job(rt: Runtime, args: argparse.Namespace) -> int:
    """``keys list|rotate`` on an open runtime."""
    now = rt.clock()
    if args.action == "rotate":
        key = await rt.keys.rotate(now, starts=now if args.now else None)
        when = "now" if args.now else f"{_when(key.created_at)} (published now)"
        print(f"new signing key {key.kid} signs from {when}; older keys keep verifying until they expire")
    ring = await rt.keys.load(now)
    signer = ring.signing_key(now)
    for k in ring:
        mark = "signing" if signer and k.kid == signer.kid else "next" if k.created_at > now else "verify-only"
        print(f"{k.kid}\t{k.jwk()['alg']}\tsigns from {_when(k.created_at)}\tuntil {_when(k.not_after)}\t{mark}")
    return 0


def cmd_keys(args: argparse.Namespace) -> int:
    return asyncio.run(_with_runtime(args, lambda rt: keys_job(rt, args)))


async def sessions_job(rt: Runtime, args: argparse.Namespace) -> int:
    """``sessions list|revoke`` on an open runtime; revocation goes through the service."""
    if args.action == "revoke":
        if await rt.service.revoke(args.session_id, "admin"):
            print(f"revoked {args.session_id}")
            return 0
        print(f"silentauth: no live session {args.session_id!r}", file=sys.stderr)
        return 1
    user = await rt.users.get(args.name)
    if user is None:
        print(f"silentauth: no user {args.name!r}", file=sys.stderr)
        return 1
    now = rt.clock()
    for s in await rt.store.list_sessions(user.id):
        if s.revoked_at is not None:
            state = f"revoked ({s.revoked_reason})"
        else:
            state = "live" if s.is_live(now) else "expired"
        print(f"{s.id}\t{state}\tcreated {_when(s.created_at)}\tlast used {_when(s.last_used_at)}\t{s.ip}\t{s.user_agent}")
    return 0


def cmd_sessions(args: argparse.Namespace) -> int:
    return asyncio.run(_with_runtime(args, lambda rt: sessions_job(rt, args)))


async def clients_job(rt: Runtime, args: argparse.Namespace) -> int:
    """``clients add|list|remove``: the registry of OAuth clients (RFC 6749 §2)."""
    if args.action == "add":
        try:
            client, secret = await rt.clients.register(args.client_id, args.name, confidential=not args.public)
        except (AlreadyExists, ValueError) as exc:
            print(f"silentauth: {exc}", file=sys.stderr)
            return 1
        kind = "confidential" if secret else "public"
        print(f"added {kind} client {client.client_id}")
        if secret:
            # Only the hash is stored: this is the one time the secret is shown.
            print(f"client_secret: {secret}")
    elif args.action == "list":
        for c in await rt.clients.all():
            print(f"{c.client_id}\t{'confidential' if c.confidential else 'public'}\t{_when(c.created_at or None)}\t{c.name}")
    else:
        try:
            removed = await rt.clients.remove(args.client_id)
        except ValueError as exc:
            print(f"silentauth: {exc}", file=sys.stderr)
            return 1
        if not removed:
            print(f"silentauth: no client {args.client_id!r}", file=sys.stderr)
            return 1
        print(f"removed {args.client_id}")
    return 0


def cmd_clients(args: argparse.Namespace) -> int:
    return asyncio.run(_with_runtime(args, lambda rt: clients_job(rt, args)))


def cmd_storm(args: argparse.Namespace) -> int:
    from silentauth.storm.simulate import main as storm_main

    return storm_main(args)


def _leaf(sub: argparse._SubParsersAction[argparse.ArgumentParser], name: str, help: str) -> argparse.ArgumentParser:
    """A subcommand that runs: it takes every setting flag too."""
    p = sub.add_parser(name, help=help, description=help)
    flags.add_setting_flags(p)
    return p


def cmd_chaos(args: argparse.Namespace) -> int:
    from silentauth.storm.chaos_report import main as chaos_main

    return chaos_main(args)


def build_parser() -> argparse.ArgumentParser:
    """The whole command line; setting flags are accepted before and after the subcommand."""
    p = argparse.ArgumentParser(
        prog="silentauth",
        description="Seamless token refresh, end to end. Every setting is a flag and a SILENTAUTH_* variable.",
    )
    flags.add_setting_flags(p)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = _leaf(sub, "serve", "run the token service and the demo page (--demo: user demo/demo)")
    serve.set_defaults(func=cmd_serve)

    users = sub.add_parser("users", help="manage local users", description="manage local users")
    us = users.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = _leaf(us, "add", "add a user; the password is asked twice, or read from stdin")
    add.add_argument("name", help="user name (normalized: NFKC, lower case)")
    add.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")
    _leaf(us, "list", "list users: name, id, created")
    rm = _leaf(us, "remove", "remove a user and revoke all its sessions")
    rm.add_argument("name", help="user name")
    pw = _leaf(us, "passwd", "set a user's password and revoke all its sessions")
    pw.add_argument("name", help="user name")
    pw.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")
    users.set_defaults(func=cmd_users)

    keys = sub.add_parser("keys", help="signing keys", description="signing keys")
    ks = keys.add_subparsers(dest="action", required=True, metavar="ACTION")
    _leaf(ks, "list", "list keys: kid, algorithm, validity, role")
    kr = _leaf(ks, "rotate", "publish a new key now; it signs after KEY_PREPUBLISH")
    kr.add_argument(
        "--now",
        action="store_true",
        help="sign with it at once; running instances pick it up within 5 s (their key reload), "
        "and verifiers holding an older JWKS refetch on the unknown kid",
    )
    keys.set_defaults(func=cmd_keys)

    sessions = sub.add_parser("sessions", help="device sessions", description="device sessions")
    ss = sessions.add_subparsers(dest="action", required=True, metavar="ACTION")
    sl = _leaf(ss, "list", "list a user's sessions: id, state, created, last used, address, user agent")
    sl.add_argument("name", help="user name")
    sr = _leaf(ss, "revoke", "revoke one session (its access tokens fail within REVOCATION_POLL)")
    sr.add_argument("session_id", help="session id, as sessions list shows it")
    sessions.set_defaults(func=cmd_sessions)

    clients = sub.add_parser("clients", help="registered OAuth clients")
    cs = clients.add_subparsers(dest="action", required=True)
    ca = cs.add_parser("add", help="register a client; a confidential one's secret is printed once")
    ca.add_argument("client_id")
    ca.add_argument("--name", default="", help="a description for `clients list`")
    ca.add_argument("--public", action="store_true", help="no secret: identified by client_id alone")
    cs.add_parser("list")
    cs.add_parser("remove").add_argument("client_id")
    clients.set_defaults(func=cmd_clients)

    from silentauth.storm.command import add_arguments as storm_arguments

    storm = sub.add_parser("storm", help="simulate an expiry storm", description="simulate an expiry storm")
    storm_arguments(storm)
    storm.set_defaults(func=cmd_storm)

    from silentauth.storm.chaos_report import add_arguments as chaos_arguments

    chaos = sub.add_parser("chaos", help="measure rotation rules under lost answers, sleep, skew and theft")
    chaos_arguments(chaos)
    chaos.set_defaults(func=cmd_chaos)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    for warning in flags.unknown_variables(os.environ):
        print(f"silentauth: warning: {warning}", file=sys.stderr)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"silentauth: {exc}", file=sys.stderr)
        return 2
    except SilentAuthError as exc:
        print(f"silentauth: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
