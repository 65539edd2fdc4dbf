"""Refresh load from a shared pool of sessions, for the store and cluster benchmarks.

:mod:`bench.stores` and :mod:`bench.cluster` load the token service the same
way: one seeded user, a pool of sessions logged in over raw keep-alive
connections (:class:`bench.loadgen.Connection`), then workers that each take a
session's current refresh token from the pool and put its successor back. So no
two requests race on one token and every answer is a real rotation, while a
token rotated on one service process is next presented to another (connections
are spread over the processes as a balancer would, tokens are not).
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from bench.loadgen import Connection, http_request
from silentauth.core.passwords import Passwords
from silentauth.core.ports import User
from silentauth.stores.base import open_store

USERNAME = PASSWORD = "bench"
LOGIN = {"grant_type": "password", "username": USERNAME, "password": PASSWORD}


def seed_user(url: str) -> None:
    """Add the bench user to the store at ``url``."""
    # A cheap Argon2 hash: the benches measure refresh, not password hashing.
    cheap = Passwords(time_cost=1, memory_cost=1024, parallelism=1)

    async def go() -> None:
        store = open_store(url)
        await store.open()
        try:
            await store.add_user(User(str(uuid.uuid4()), USERNAME, cheap.hash(PASSWORD), time.time()))
        finally:
            await store.close()

    asyncio.run(go())


async def connect(ports: list[int], count: int) -> list[Connection]:
    """``count`` keep-alive connections, spread round-robin over ``ports``."""
    return [Connection(*await asyncio.open_connection("127.0.0.1", ports[k % len(ports)])) for k in range(count)]


async def token(conn: Connection, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
    """POST ``form`` to ``/auth/token``: (status, JSON body)."""
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    port = conn.writer.get_extra_info("peername")[1]
    status, payload = await conn.exchange(http_request("POST", "/auth/token", port, headers, urlencode(form).encode()))
    return status, json.loads(payload) if payload else {}


async def login_pool(conns: list[Connection], sessions: int) -> asyncio.Queue[str]:
    """Log ``sessions`` sessions in over ``conns``; their refresh tokens, shuffled, as a queue."""
    tokens: list[str] = []

    async def login(conn: Connection, n: int) -> None:
        for _ in range(n):
            status, body = await token(conn, LOGIN)
            if status != 200:
                raise RuntimeError(f"login failed: {status} {body}")
            tokens.append(str(body["refresh_token"]))

    share, extra = divmod(sessions, len(conns))
    await asyncio.gather(*(login(c, share + (k < extra)) for k, c in enumerate(conns)))
    random.Random(1).shuffle(tokens)
    pool: asyncio.Queue[str] = asyncio.Queue()
    for t in tokens:
        pool.put_nowait(t)
    return pool


@dataclass
class Refreshes:
    """What :func:`refresh_from` did: rotations, latencies inside the window, refusals by status."""

    done: int = 0
    latencies: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)


async def refresh_from(
    conns: list[Connection], pool: asyncio.Queue[str], seconds: float, warmup: float = 0.0
) -> Refreshes:
    """Refresh over every connection for ``warmup`` + ``seconds``, each time with a token of ``pool``.

    A refused token goes back to the pool as it was (a rotated one is replaced by
    its successor). Latencies count only requests that started after the warmup
    and ended inside the window, so a rate taken from them is per ``seconds``.
    """
    out = Refreshes()
    start = time.monotonic() + warmup
    end = start + seconds

    async def worker(conn: Connection) -> None:
        while time.monotonic() < end:
            old = pool.get_nowait()
            t0 = time.monotonic()
            status, body = await token(conn, {"grant_type": "refresh_token", "refresh_token": old})
            t1 = time.monotonic()
            if status == 200:
                pool.put_nowait(str(body["refresh_token"]))
                out.done += 1
                if t0 >= start and t1 <= end:
                    out.latencies.append(t1 - t0)
            else:
                out.errors[str(status)] = out.errors.get(str(status), 0) + 1
                pool.put_nowait(old)

    await asyncio.gather(*(worker(c) for c in conns))
    return out


def close(conns: list[Connection]) -> None:
    """Close every connection."""
    for c in conns:
        c.writer.close()
