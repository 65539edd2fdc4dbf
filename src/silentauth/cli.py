"""``silentauth``: serve, users, keys, sessions, storm.

Every flag has a ``SILENTAUTH_*`` twin; the flag wins. A bad setting prints
one line naming it and exits with status 2.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from silentauth.errors import AlreadyExists, ConfigError, SilentAuthError
from silentauth.settings import Settings

if TYPE_CHECKING:
    # Imported when a command runs: `silentauth --help` must not load the server.
    from silentauth.server.runtime import Runtime


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {
        "host": getattr(args, "host", None),
        "port": getattr(args, "port", None),
        "database_url": getattr(args, "database_url", None),
        "demo": True if getattr(args, "demo", False) else None,
    }
    return Settings.load(overrides=overrides)


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from silentauth.server.app import create_app

    settings = _settings(args)
    app = create_app(settings)
    print(f"silentauth: serving on http://{settings.host}:{settings.port}/ "
          f"(store {settings.database_url}{', demo user demo/demo' if settings.demo else ''})",
          file=sys.stderr)
    from silentauth.server.uvicorn_protocol import BoundedHttpToolsProtocol

    uvicorn.run(
        app,
        http=BoundedHttpToolsProtocol,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=False,
        proxy_headers=False,
        server_header=False,
        timeout_keep_alive=30,
        limit_concurrency=4096,
    )
    return 0


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

    if args.action == "add":
        name = normalize_username(args.name)
        if args.password_stdin:
            password = sys.stdin.readline().rstrip("\r\n")
        else:
            password = getpass.getpass(f"password for {name}: ")
        try:
            await rt.users.add(name, password)
        except InvalidRequest as exc:
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


def cmd_storm(args: argparse.Namespace) -> int:
    from silentauth.storm.simulate import main as storm_main

    return storm_main(args)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="silentauth", description="Seamless token refresh, end to end.")
    p.add_argument("--database-url", help="sqlite:///path, postgresql://…, redis://… or redis+cluster://… (SILENTAUTH_DATABASE_URL)")
    sub = p.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the token service and the demo page")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--database-url", dest="database_url", default=argparse.SUPPRESS)
    serve.add_argument("--demo", action="store_true", help="user demo/demo, 30 s access tokens")
    serve.set_defaults(func=cmd_serve)

    users = sub.add_parser("users", help="manage local users")
    us = users.add_subparsers(dest="action", required=True)
    add = us.add_parser("add")
    add.add_argument("name")
    add.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    us.add_parser("list")
    rm = us.add_parser("remove")
    rm.add_argument("name")
    users.set_defaults(func=cmd_users)

    keys = sub.add_parser("keys", help="signing keys")
    ks = keys.add_subparsers(dest="action", required=True)
    ks.add_parser("list")
    kr = ks.add_parser("rotate", help="publish a new key now; it signs after KEY_PREPUBLISH")
    kr.add_argument("--now", action="store_true", help="sign with it at once (verifiers holding an older JWKS may refuse its tokens for a few seconds)")
    keys.set_defaults(func=cmd_keys)

    sessions = sub.add_parser("sessions", help="device sessions")
    ss = sessions.add_subparsers(dest="action", required=True)
    sl = ss.add_parser("list")
    sl.add_argument("name")
    sr = ss.add_parser("revoke")
    sr.add_argument("session_id")
    sessions.set_defaults(func=cmd_sessions)

    from silentauth.storm.command import add_arguments as storm_arguments

    storm = sub.add_parser("storm", help="simulate an expiry storm")
    storm_arguments(storm)
    storm.set_defaults(func=cmd_storm)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
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
