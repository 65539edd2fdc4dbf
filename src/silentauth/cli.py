"""``silentauth``: serve, users, keys, sessions, storm.

Every flag has a ``SILENTAUTH_*`` twin; the flag wins. A bad setting prints
one line naming it and exits with status 2.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from silentauth.errors import AlreadyExists, ConfigError, SilentAuthError
from silentauth.settings import Settings


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


async def _with_runtime(args: argparse.Namespace, job: Callable[[Any], Awaitable[int]]) -> int:
    from silentauth.clock import system_clock
    from silentauth.core.passwords import Passwords
    from silentauth.server.runtime import Runtime
    from silentauth.stores.base import open_store

    settings = _settings(args)
    rt = Runtime(settings, open_store(settings.database_url), system_clock, Passwords())
    await rt.store.open()
    try:
        return await job(rt)
    finally:
        await rt.store.close()


def cmd_users(args: argparse.Namespace) -> int:
    from silentauth.core.passwords import normalize_username
    from silentauth.stores.base import User

    async def job(rt: Any) -> int:
        if args.action == "add":
            name = normalize_username(args.name)
            if args.password_stdin:
                password = sys.stdin.readline().rstrip("\r\n")
            else:
                password = getpass.getpass(f"password for {name}: ")
            if not password:
                print("silentauth: empty password refused", file=sys.stderr)
                return 2
            try:
                await rt.store.add_user(User(str(uuid.uuid4()), name, rt.passwords.hash(password), rt.clock()))
            except AlreadyExists:
                print(f"silentauth: user {name!r} exists", file=sys.stderr)
                return 1
            print(f"added {name}")
        elif args.action == "list":
            for u in await rt.store.list_users():
                print(f"{u.username}\t{u.id}\t{_when(u.created_at)}")
        else:
            name = normalize_username(args.name)
            user = await rt.store.get_user(name)
            if user is None or not await rt.store.remove_user(name):
                print(f"silentauth: no user {name!r}", file=sys.stderr)
                return 1
            await rt.store.revoke_user_sessions(user.id, "admin", rt.clock())
            print(f"removed {name}")
        return 0

    return asyncio.run(_with_runtime(args, job))


def cmd_keys(args: argparse.Namespace) -> int:
    async def job(rt: Any) -> int:
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

    return asyncio.run(_with_runtime(args, job))


def cmd_sessions(args: argparse.Namespace) -> int:
    from silentauth.core.passwords import normalize_username

    async def job(rt: Any) -> int:
        if args.action == "revoke":
            if await rt.store.revoke_session(args.session_id, "admin", rt.clock()):
                print(f"revoked {args.session_id}")
                return 0
            print(f"silentauth: no live session {args.session_id!r}", file=sys.stderr)
            return 1
        user = await rt.store.get_user(normalize_username(args.name))
        if user is None:
            print(f"silentauth: no user {args.name!r}", file=sys.stderr)
            return 1
        for s in await rt.store.list_sessions(user.id):
            state = f"revoked ({s.revoked_reason})" if s.revoked_at else "live"
            if not s.revoked_at and min(s.expires_at, s.idle_expires_at) <= rt.clock():
                state = "expired"
            print(f"{s.id}\t{state}\tcreated {_when(s.created_at)}\tlast used {_when(s.last_used_at)}\t{s.ip}\t{s.user_agent}")
        return 0

    return asyncio.run(_with_runtime(args, job))


def cmd_storm(args: argparse.Namespace) -> int:
    from silentauth.storm.simulate import main as storm_main

    return storm_main(args)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="silentauth", description="Seamless token refresh, end to end.")
    p.add_argument("--database-url", help="sqlite:///path, postgresql://… or redis://… (SILENTAUTH_DATABASE_URL)")
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

    storm = sub.add_parser("storm", help="simulate an expiry storm")
    storm.add_argument("--sessions", type=int, default=10_000)
    storm.add_argument("--hours", type=float, default=4.0)
    storm.add_argument("--seed", type=int, default=1)
    storm.add_argument("--plot", metavar="FILE.png")
    storm.add_argument("--json", action="store_true")
    storm.add_argument("--live", action="store_true", help="drive a running server over HTTP")
    storm.add_argument("--url", default="http://127.0.0.1:8000")
    storm.add_argument("--burst", type=float, help="seconds over which the logins arrive (60)")
    storm.add_argument("--margin", type=float, help="client refreshes this many seconds early (60)")
    storm.add_argument("--bin", type=int, help="seconds per load bin (60)")
    storm.add_argument(
        "--what-if",
        action="append",
        choices=["client_jitter", "per_token_only"],
        help="add a comparison scenario (repeatable)",
    )
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
