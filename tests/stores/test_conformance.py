"""One conformance suite for every store: SQLite, PostgreSQL, Redis and Redis Cluster.

Each test runs against each engine (the ``store`` fixture is parametrized),
so a behaviour the core relies on is pinned once and holds everywhere.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest

from silentauth.core.ports import (
    ClientRecord,
    RotateRequest,
    SessionRecord,
    Store,
    StoredKey,
    User,
)
from silentauth.errors import AlreadyExists, StoreUnavailable
from silentauth.stores.base import open_store

pytestmark = pytest.mark.anyio

# Fractional seconds on purpose: every engine must return times bit-exact.
T0 = 1_800_000_000.123456
IDLE = 3600.0
MAX_AGE = 86400.0


def make_session(
    user_id: str = "u-alice", *, now: float = T0, idle: float = IDLE, max_age: float = MAX_AGE, **extra: object
) -> SessionRecord:
    s = SessionRecord(
        id=uuid.uuid4().hex,
        user_id=user_id,
        username="alice",
        counter=0,
        scope="openid api",
        client_id="native",
        auth_time=now,
        created_at=now,
        last_used_at=now,
        rotated_at=now,
        idle_expires_at=min(now + idle, now + max_age),
        expires_at=now + max_age,
        user_agent="pytest/1 (ünïcode)",
        ip="127.0.0.1",
    )
    return s.with_(**extra) if extra else s


async def new_session(store: Store, **kw: object) -> SessionRecord:
    s = make_session(**kw)  # type: ignore[arg-type]
    await store.create_session(s)
    return s


# -- users -------------------------------------------------------------------


async def test_users_add_get_list_remove_roundtrip(store: Store) -> None:
    bob = User("id-bob", "bob", "$argon2id$bob", T0)
    alice = User("id-alice", "alice", "$argon2id$alice", T0 + 1.5)
    await store.add_user(bob)
    await store.add_user(alice)
    assert await store.get_user("alice") == alice
    assert await store.list_users() == [alice, bob]
    assert await store.remove_user("alice") is True
    assert await store.remove_user("alice") is False
    assert await store.get_user("alice") is None
    assert await store.list_users() == [bob]


async def test_session_resources_round_trip_through_create_rotate_and_list(store: Store) -> None:
    s = await new_session(store, resources="https://billing.example https://files.example/v1")
    assert await store.get_session(s.id) == s
    rotated = await store.rotate(s.id, 0, T0 + 1, T0 + 1 + IDLE)
    assert rotated.swapped and rotated.session is not None
    assert rotated.session.resources == s.resources
    assert [x.resources for x in await store.list_sessions(s.user_id)] == [s.resources]
    plain = await new_session(store)
    assert (await store.get_session(plain.id)) == plain and plain.resources == ""


async def test_session_claims_round_trip_through_create_rotate_and_list(store: Store) -> None:
    text = '{"tenant":"acme","amr":["otp"],"name":"Zoë \\u2603"}'
    s = await new_session(store, claims=text)
    assert await store.get_session(s.id) == s
    rotated = await store.rotate(s.id, 0, T0 + 1, T0 + 1 + IDLE)
    assert rotated.swapped and rotated.session is not None and rotated.session.claims == text
    many = await store.rotate_many([RotateRequest(s.id, 1, T0 + 2), RotateRequest(s.id, 1, T0 + 2)], T0 + 2)
    assert [r.session.claims for r in many if r.session] == [text, text]
    assert [x.claims for x in await store.list_sessions(s.user_id)] == [text]
    plain = await new_session(store)
    assert (await store.get_session(plain.id)) == plain and plain.claims == ""


# -- clients -----------------------------------------------------------------


async def test_clients_add_get_list_remove_roundtrip(store: Store) -> None:
    gateway = ClientRecord("gateway", "sha256$ab$cd", "API gateway (ünïcode)", T0)
    spa = ClientRecord("app-spa", "", "", T0 + 0.5)
    assert await store.list_clients() == []
    await store.add_client(gateway)
    await store.add_client(spa)
    assert await store.get_client("gateway") == gateway and gateway.confidential
    assert await store.get_client("app-spa") == spa and not spa.confidential
    assert await store.get_client("nobody") is None
    assert await store.list_clients() == [spa, gateway]
    with pytest.raises(AlreadyExists):
        await store.add_client(ClientRecord("gateway", "sha256$other$x", "impostor", T0 + 9))
    assert await store.get_client("gateway") == gateway
    assert await store.remove_client("gateway") is True
    assert await store.remove_client("gateway") is False
    assert await store.list_clients() == [spa]


async def test_set_password_replaces_the_hash_of_an_existing_user_only(store: Store) -> None:
    bob = User("id-bob", "bob", "$argon2id$old", T0)
    await store.add_user(bob)
    assert await store.set_password("bob", "$argon2id$new") is True
    assert await store.get_user("bob") == User("id-bob", "bob", "$argon2id$new", T0)
    # No stub user appears for a name that does not exist.
    assert await store.set_password("ghost", "$argon2id$x") is False
    assert await store.get_user("ghost") is None
    assert [u.username for u in await store.list_users()] == ["bob"]


async def test_adding_a_taken_user_name_raises_already_exists(store: Store) -> None:
    await store.add_user(User("id-1", "alice", "h1", T0))
    with pytest.raises(AlreadyExists):
        await store.add_user(User("id-2", "alice", "h2", T0))
    assert (await store.get_user("alice")) == User("id-1", "alice", "h1", T0)


async def test_unknown_user_is_none(store: Store) -> None:
    assert await store.get_user("nobody") is None
    assert await store.list_users() == []


# -- keys --------------------------------------------------------------------


async def test_keys_roundtrip_bytes_exact_in_creation_order(store: Store) -> None:
    newer = StoredKey("k2", "ES256", bytes(range(256)), '{"kid": "k2"}', T0 + 10, T0 + 100)
    older = StoredKey("k1", "ES256", b"\x00\xff" * 40, '{"kid": "k1"}', T0, T0 + 90)
    await store.add_key(newer)
    await store.add_key(older)
    assert await store.list_keys() == [older, newer]


# -- sessions ----------------------------------------------------------------


async def test_created_session_reads_back_identical(store: Store) -> None:
    s = await new_session(store)
    assert await store.get_session(s.id) == s
    assert await store.get_session("no-such-session") is None


async def test_odd_text_from_requests_is_stored_or_not_found_never_an_error(store: Store) -> None:
    # client_id comes from a form field and session ids from URL paths: a NUL
    # byte must not turn into a 500 (PostgreSQL text cannot hold NUL).
    s = await new_session(store, client_id="app\x00x", user_agent="ua\x00")
    got = await store.get_session(s.id)
    assert got is not None
    assert got.client_id.replace("\ufffd", "\x00") == "app\x00x"
    assert await store.get_session("sid\x00") is None
    assert await store.get_user("bob\x00") is None
    assert await store.revoke_session("sid\x00", "device", T0) is False


async def test_rotate_live_session_swaps_and_moves_counter_by_one(store: Store) -> None:
    s = await new_session(store)
    now = T0 + 7.25
    result = await store.rotate(s.id, 0, now, now + IDLE)
    assert result.swapped
    assert result.session == s.with_(counter=1, rotated_at=now, last_used_at=now, idle_expires_at=now + IDLE)
    assert await store.get_session(s.id) == result.session


async def test_rotate_clamps_idle_deadline_to_absolute_expiry(store: Store) -> None:
    s = await new_session(store, max_age=100.0)
    result = await store.rotate(s.id, 0, T0 + 50, T0 + 50 + IDLE)
    assert result.swapped and result.session is not None
    assert result.session.idle_expires_at == s.expires_at


async def test_rotate_with_a_used_counter_does_not_swap_and_returns_current_row(store: Store) -> None:
    s = await new_session(store)
    first = await store.rotate(s.id, 0, T0 + 1, T0 + 1 + IDLE)
    again = await store.rotate(s.id, 0, T0 + 2, T0 + 2 + IDLE)
    assert not again.swapped
    assert again.session == first.session  # unchanged by the failed attempt
    ahead = await store.rotate(s.id, 5, T0 + 3, T0 + 3 + IDLE)
    assert not ahead.swapped and ahead.session == first.session


async def test_rotate_records_the_key_hash_of_the_swap_and_a_failed_swap_keeps_it(store: Store) -> None:
    s = await new_session(store)
    assert (await store.get_session(s.id)) == s and s.rotation_key == ""
    first = await store.rotate(s.id, 0, T0 + 1, T0 + 1 + IDLE, "h-first")
    assert first.swapped and first.session is not None and first.session.rotation_key == "h-first"
    late = await store.rotate(s.id, 0, T0 + 2, T0 + 2 + IDLE, "h-other")
    assert not late.swapped and late.session == first.session
    (batched,) = await store.rotate_many([RotateRequest(s.id, 1, T0 + 3 + IDLE, "h-batch")], T0 + 3)
    assert batched.session is not None and batched.session.rotation_key == "h-batch"
    keyless = await store.rotate(s.id, 2, T0 + 4, T0 + 4 + IDLE)
    assert keyless.session is not None and keyless.session.rotation_key == ""
    assert await store.get_session(s.id) == keyless.session


async def test_rotate_unknown_session_returns_none(store: Store) -> None:
    result = await store.rotate("no-such-session", 0, T0, T0 + IDLE)
    assert not result.swapped and result.session is None


@pytest.mark.parametrize("late", [IDLE, IDLE + 0.001], ids=["at-idle-deadline", "past-idle-deadline"])
async def test_rotate_after_idle_expiry_does_not_swap(store: Store, late: float) -> None:
    s = await new_session(store)
    result = await store.rotate(s.id, 0, T0 + late, T0 + late + IDLE)
    assert not result.swapped
    assert result.session == s


async def test_rotate_after_absolute_expiry_does_not_swap(store: Store) -> None:
    s = await new_session(store, idle=MAX_AGE * 2, max_age=10.0)
    result = await store.rotate(s.id, 0, T0 + 10, T0 + 10 + IDLE)
    assert not result.swapped and result.session == s


async def test_rotate_many_answers_each_request_in_order(store: Store) -> None:
    a, b, dead = await new_session(store), await new_session(store), await new_session(store)
    await store.revoke_session(dead.id, "logout", T0 + 1)
    now = T0 + 2
    results = await store.rotate_many(
        [
            RotateRequest(a.id, 0, now + IDLE),
            RotateRequest("no-such-session", 0, now + IDLE),
            RotateRequest(b.id, 3, now + IDLE),
            RotateRequest(dead.id, 0, now + IDLE),
        ],
        now,
    )
    assert [r.swapped for r in results] == [True, False, False, False]
    assert results[0].session == a.with_(counter=1, rotated_at=now, last_used_at=now, idle_expires_at=now + IDLE)
    assert results[1].session is None
    assert results[2].session == b
    assert results[3].session is not None and results[3].session.revoked_reason == "logout"
    assert await store.get_session(a.id) == results[0].session


async def test_rotate_many_racers_for_one_session_swap_once(store: Store) -> None:
    s = await new_session(store)
    now = T0 + 3
    results = await store.rotate_many([RotateRequest(s.id, 0, now + IDLE)] * 20, now)
    assert sum(r.swapped for r in results) == 1
    assert {r.session.counter for r in results if r.session is not None} == {1}
    after = await store.get_session(s.id)
    assert after is not None and after.counter == 1


async def test_rotate_many_judges_a_sessions_requests_in_arrival_order_among_others(store: Store) -> None:
    # One session's requests interleaved with others', as a batch of racing
    # refreshes and a late token's double swap bring them: each sees the ones before.
    x, y, z = await new_session(store), await new_session(store), await new_session(store)
    now = T0 + 4
    order = [(x, 0), (y, 0), (x, 1), (z, 5), (x, 0), (y, 0), (x, 2), (z, 0)]
    results = await store.rotate_many([RotateRequest(s.id, c, now + IDLE, f"k{i}") for i, (s, c) in enumerate(order)], now)
    assert [r.swapped for r in results] == [True, True, True, False, False, False, True, True]
    assert [r.session.counter if r.session else None for r in results] == [1, 1, 2, 0, 2, 1, 3, 1]
    assert [r.session.rotation_key if r.session else None for r in results] == ["k0", "k1", "k2", "", "k2", "k1", "k6", "k7"]
    assert [(await store.get_session(s.id)) == r.session for s, r in ((x, results[6]), (y, results[1]), (z, results[7]))]


async def test_rotate_many_of_one_is_rotate(store: Store) -> None:
    s = await new_session(store)
    (result,) = await store.rotate_many([RotateRequest(s.id, 0, T0 + 1 + IDLE)], T0 + 1)
    assert result.swapped and result.session is not None and result.session.counter == 1


async def test_rotate_revoked_session_does_not_swap(store: Store) -> None:
    s = await new_session(store)
    assert await store.revoke_session(s.id, "logout", T0 + 1)
    result = await store.rotate(s.id, 0, T0 + 2, T0 + 2 + IDLE)
    assert not result.swapped
    assert result.session == s.with_(revoked_at=T0 + 1, revoked_reason="logout")


async def test_revoke_session_is_idempotent_and_feeds_once(store: Store) -> None:
    s = await new_session(store)
    assert await store.revoke_session(s.id, "logout", T0 + 1) is True
    assert await store.revoke_session(s.id, "device", T0 + 2) is False
    assert (await store.get_session(s.id)) == s.with_(revoked_at=T0 + 1, revoked_reason="logout")
    ids, _ = await store.revocations_since(0)
    assert ids == [s.id]
    assert await store.revoke_session("no-such-session", "logout", T0) is False


async def test_revoke_user_sessions_ends_only_that_users_live_sessions(store: Store) -> None:
    a1 = await new_session(store, user_id="u-a")
    a2 = await new_session(store, user_id="u-a", now=T0 + 1)
    already = await new_session(store, user_id="u-a", now=T0 + 2)
    other = await new_session(store, user_id="u-b")
    await store.revoke_session(already.id, "device", T0 + 3)
    ids = await store.revoke_user_sessions("u-a", "logout_all", T0 + 4)
    assert sorted(ids) == sorted([a1.id, a2.id])
    assert (await store.get_session(a1.id)) == a1.with_(revoked_at=T0 + 4, revoked_reason="logout_all")
    assert (await store.get_session(already.id)) == already.with_(revoked_at=T0 + 3, revoked_reason="device")
    assert (await store.get_session(other.id)) == other
    assert await store.revoke_user_sessions("u-a", "logout_all", T0 + 5) == []
    assert await store.revoke_user_sessions("u-nobody", "logout_all", T0 + 5) == []


async def test_list_sessions_returns_the_users_sessions_oldest_first(store: Store) -> None:
    later = await new_session(store, user_id="u-a", now=T0 + 5)
    first = await new_session(store, user_id="u-a", now=T0)
    await new_session(store, user_id="u-b")
    await store.revoke_session(later.id, "device", T0 + 6)
    assert await store.list_sessions("u-a") == [first, later.with_(revoked_at=T0 + 6, revoked_reason="device")]
    assert await store.list_sessions("u-nobody") == []


async def test_revocations_since_is_a_monotonic_cursor_over_the_feed(store: Store) -> None:
    assert await store.revocations_since(0) == ([], 0)
    sessions = [await new_session(store) for _ in range(3)]
    for i, s in enumerate(sessions):
        await store.revoke_session(s.id, "logout", T0 + i)
    ids, cursor = await store.revocations_since(0)
    assert ids == [s.id for s in sessions]
    assert cursor > 0
    assert await store.revocations_since(cursor) == ([], cursor)
    late = await new_session(store)
    await store.revoke_session(late.id, "admin", T0 + 9)
    ids2, cursor2 = await store.revocations_since(cursor)
    assert ids2 == [late.id] and cursor2 > cursor
    # An older cursor sees the entries after it again (replay is harmless).
    assert (await store.revocations_since(0))[0] == [*ids, late.id]


async def test_purge_drops_ended_sessions_and_old_feed_keeps_the_rest(store: Store) -> None:
    now = T0 + 2000  # horizon T0 + 1000; the live session idles out at T0 + 3600
    live = await new_session(store)
    expired = await new_session(store, max_age=100.0)  # ended long before the horizon
    idle_out = await new_session(store, idle=100.0)
    old_revoked = await new_session(store)
    fresh_revoked = await new_session(store)
    await store.revoke_session(old_revoked.id, "logout", T0 + 50)
    await store.revoke_session(fresh_revoked.id, "logout", now - 10)
    assert await store.purge(now, keep_revocations=1000) == 3
    for gone in (expired, idle_out, old_revoked):
        assert await store.get_session(gone.id) is None
    assert await store.get_session(live.id) == live
    assert (await store.get_session(fresh_revoked.id)) is not None
    assert (await store.revocations_since(0))[0] == [fresh_revoked.id]
    assert await store.purge(now, keep_revocations=1000) == 0


# -- rate limits -------------------------------------------------------------


async def test_hit_counts_per_key_and_window_and_peek_does_not_count(store: Store) -> None:
    window = 60
    start = (int(T0) // window) * window  # the first second of a window
    assert await store.peek("login:alice", window, start) == 0
    assert [await store.hit("login:alice", window, start + i) for i in range(3)] == [1, 2, 3]
    assert await store.peek("login:alice", window, start + 59.9) == 3
    assert await store.hit("login:bob", window, start) == 1
    # The next window starts from zero.
    assert await store.peek("login:alice", window, start + 60) == 0
    assert await store.hit("login:alice", window, start + 60) == 1


async def test_rate_limit_counters_are_shared_by_instances_on_a_shared_store(
    store: Store, store_url_of: str, store_kind: str
) -> None:
    peer = open_store(store_url_of)
    await peer.open()
    try:
        assert await store.hit("login:alice", 60, T0) == 1
        if store_kind == "sqlite":
            # Documented: the embedded store keeps counters in the process's memory.
            assert await peer.hit("login:alice", 60, T0 + 1) == 1
            assert await store.peek("login:alice", 60, T0 + 2) == 1
        else:
            assert await peer.hit("login:alice", 60, T0 + 1) == 2
            assert await store.peek("login:alice", 60, T0 + 2) == 2
    finally:
        await peer.close()


# -- lifecycle and failure ---------------------------------------------------


async def test_reopening_a_store_keeps_its_data(store: Store, store_url_of: str) -> None:
    s = await new_session(store)
    again = open_store(store_url_of)
    await again.open()  # migrations already applied: a no-op
    try:
        assert await again.get_session(s.id) == s
    finally:
        await again.close()


@pytest.mark.parametrize(
    "url",
    ["postgresql://postgres@127.0.0.1:9/none", "redis://127.0.0.1:9/0", "redis+cluster://127.0.0.1:9"],
    ids=["postgres", "redis", "redis-cluster"],
)
async def test_unreachable_store_raises_store_unavailable(url: str) -> None:
    s = open_store(url)
    with pytest.raises(StoreUnavailable):
        await s.open()
    with pytest.raises(StoreUnavailable):
        await s.get_session("x")


# -- concurrency -------------------------------------------------------------


async def test_200_parallel_rotations_of_one_counter_swap_exactly_once(store: Store, store_url_of: str) -> None:
    s = await new_session(store)
    peer = open_store(store_url_of)  # a second instance on the same store
    await peer.open()
    try:
        now = T0 + 1
        results = await asyncio.gather(
            *((store if i % 2 else peer).rotate(s.id, 0, now, now + IDLE) for i in range(200))
        )
    finally:
        await peer.close()
    assert sum(r.swapped for r in results) == 1
    # Every loser sees the winner's row: the grace path converges on counter 1.
    assert {r.session.counter for r in results if r.session is not None} == {1}
    assert all(r.session is not None for r in results)
    assert (await store.get_session(s.id)).counter == 1  # type: ignore[union-attr]


async def test_concurrent_revocations_reach_a_polling_reader_exactly_once(store: Store, store_url_of: str) -> None:
    sessions = [await new_session(store) for _ in range(60)]
    peer = open_store(store_url_of)
    await peer.open()
    seen: list[str] = []
    cursor = 0
    done = asyncio.Event()

    async def reader() -> None:
        nonlocal cursor
        for _ in range(2000):  # bounded; ends soon after the writers
            ids, new = await store.revocations_since(cursor)
            assert new >= cursor
            seen.extend(ids)
            cursor = new
            if done.is_set():
                return
            await asyncio.sleep(0)

    async def writers() -> None:
        await asyncio.gather(
            *((store if i % 2 else peer).revoke_session(s.id, "logout", T0 + i) for i, s in enumerate(sessions))
        )
        done.set()

    try:
        await asyncio.gather(reader(), writers())
        ids, _ = await store.revocations_since(cursor)
        seen.extend(ids)
    finally:
        await peer.close()
    assert sorted(seen) == sorted(s.id for s in sessions)
