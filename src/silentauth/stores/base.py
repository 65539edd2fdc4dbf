"""What the engines share: picking one from a URL, and batching by single swaps.

The records and the :class:`~silentauth.core.ports.Store` protocol the engines
implement belong to the core (:mod:`silentauth.core.ports`); this module only
helps implement and choose them.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence
from typing import Any

from silentauth.core.ports import RotateRequest, RotateResult, SessionRecord, Store
from silentauth.errors import ConfigError

# The record's fields in order: the SQL engines select their session columns so.
SESSION_FIELDS = tuple(f.name for f in dataclasses.fields(SessionRecord))
_new = object.__new__


def session_record(row: Sequence[Any]) -> SessionRecord:
    """The record of a row whose columns are :data:`SESSION_FIELDS`, in that order.

    Filled in directly rather than through the frozen dataclass's ``__init__``,
    which pays one ``object.__setattr__`` per field: 19 of them cost about as
    much as the rest of the row's trip out of SQLite (more than twice this way).
    The record has no ``__post_init__`` and no slots, so the result is the same
    object ``SessionRecord(*row)`` builds (the store tests compare the two).
    """
    record: SessionRecord = _new(SessionRecord)
    record.__dict__.update(zip(SESSION_FIELDS, row, strict=True))
    return record


async def rotate_each(store: Store, requests: Sequence[RotateRequest], now: float) -> list[RotateResult]:
    """:meth:`Store.rotate_many` for a store that swaps one row per round trip.

    The swaps of different sessions run concurrently, as separate refreshes
    would. The requests of one session run one after another, in order: run
    concurrently, their round trips could reach the store in any order, and a
    late token's double swap (``c`` then ``c + 1``) would fail its second half.
    """
    if len(requests) == 1:
        r = requests[0]
        return [await store.rotate(r.session_id, r.counter, now, r.idle_expires_at, r.key_hash)]
    by_session: dict[str, list[int]] = {}
    for i, r in enumerate(requests):
        by_session.setdefault(r.session_id, []).append(i)
    results: list[RotateResult | None] = [None] * len(requests)

    async def in_order(indexes: list[int]) -> None:
        for i in indexes:
            r = requests[i]
            results[i] = await store.rotate(r.session_id, r.counter, now, r.idle_expires_at, r.key_hash)

    await asyncio.gather(*(in_order(indexes) for indexes in by_session.values()))
    return [r for r in results if r is not None]


def open_store(url: str) -> Store:
    """Make (but do not open) the store named by a ``DATABASE_URL``."""
    scheme = url.partition("://")[0]
    if scheme == "sqlite":
        from silentauth.stores.sqlite import SQLiteStore

        return SQLiteStore(url)
    if scheme in ("postgresql", "postgres"):
        from silentauth.stores.postgres import PostgresStore  # type: ignore[import-not-found,unused-ignore]

        store: Store = PostgresStore(url)
        return store
    if scheme in ("redis", "rediss", "redis+cluster", "rediss+cluster"):
        from silentauth.stores.redis import RedisStore  # type: ignore[import-not-found,unused-ignore]

        rstore: Store = RedisStore(url)
        return rstore
    raise ConfigError("DATABASE_URL", f"unsupported scheme {scheme!r}")
