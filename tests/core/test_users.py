"""Local accounts through :class:`Users`: the rules the CLI, the demo seed and the storm share.

A real SQLite file and the real session service on a fake clock: a removed
user or a changed password ends sessions through the service, as a log-out does.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from silentauth.core.identity import Identity, RequestInfo
from silentauth.errors import AlreadyExists, InvalidGrant, InvalidRequest
from tests.core.test_sessions import World, core_with

pytestmark = pytest.mark.anyio


async def test_add_normalizes_the_name_and_stores_an_argon2_hash(tmp_path: Path) -> None:
    async with core_with(tmp_path) as w:
        w.clock.advance(5.0)
        user = await w.core.users.add("  Bob ", "pw-b")
        assert user.username == "bob" and user.created_at == w.clock()
        assert user.password_hash.startswith("$argon2id$") and "pw-b" not in user.password_hash
        assert await w.core.users.get("BOB") == user
        assert await w.core.users.get("nobody") is None
        assert [u.username for u in await w.core.users.list()] == ["alice", "bob"]
        identity = await w.core.identity.authenticate("bob", "pw-b", RequestInfo())
        assert identity == Identity(user.id, "bob")
        other = await w.core.users.add("carol", "pw-c")
        assert other.id != user.id  # a fresh id per account


async def test_a_taken_name_or_an_empty_password_is_refused(tmp_path: Path) -> None:
    async with core_with(tmp_path) as w:
        with pytest.raises(AlreadyExists):
            await w.core.users.add("ALICE", "other")  # the same account once normalized
        with pytest.raises(InvalidRequest) as err:
            await w.core.users.add("bob", "")
        assert err.value.error_description == "empty password refused"
        with pytest.raises(InvalidRequest) as err:
            await w.core.users.set_password("alice", "")
        assert err.value.error_description == "empty password refused"
        assert await w.core.users.get("bob") is None


async def test_ensure_adds_once_and_keeps_the_existing_password(tmp_path: Path) -> None:
    async with core_with(tmp_path) as w:
        await w.core.users.ensure("bob", "first")
        await w.core.users.ensure("Bob", "second")
        await w.core.users.ensure("alice", "changed?")
        await w.service.login("bob", "first")
        await w.service.login("alice", "secret")
        with pytest.raises(InvalidGrant):
            await w.service.login("bob", "second")


async def login_twice(w: World) -> tuple[str, str]:
    first = await w.service.login("alice", "secret")
    second = await w.service.login("alice", "secret")
    return first.session.id, second.session.id


async def test_a_new_password_ends_every_other_session(tmp_path: Path) -> None:
    async with core_with(tmp_path) as w:
        keep, _ = await login_twice(w)
        user = await w.core.users.get("alice")
        assert user is not None
        assert await w.core.users.set_password("ALICE", "new-secret", keep_session=keep) == 1
        assert [s.id for s in await w.service.sessions(user.id)] == [keep]
        assert ("revoked", "admin") in w.events.events
        with pytest.raises(InvalidGrant):
            await w.service.login("alice", "secret")
        await w.service.login("alice", "new-secret")
        # Without a session to keep, all go (the one just made too).
        assert await w.core.users.set_password("alice", "third") == 2
        assert await w.service.sessions(user.id) == []
        assert await w.core.users.set_password("nobody", "x") is None


async def test_removing_a_user_revokes_its_sessions_and_frees_the_name(tmp_path: Path) -> None:
    async with core_with(tmp_path) as w:
        await login_twice(w)
        user = await w.core.users.get("alice")
        assert user is not None
        assert await w.core.users.remove(" Alice") is True
        assert await w.service.sessions(user.id) == []
        assert w.events.events.count(("revoked", "admin")) == 2
        assert await w.core.users.get("alice") is None
        assert await w.core.users.remove("alice") is False
        assert w.events.events.count(("revoked", "admin")) == 2
        await w.core.users.add("alice", "again")  # the name is free
