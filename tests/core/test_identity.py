"""The identity guard on its own: what a plug-in's failures and timings become.

:class:`GuardedIdentity` runs on a fake monotonic clock whose ``sleep`` moves
it, so the padding of refusals and the outage lengths in the log are exact.
Only the deadline uses real time (a provider that hangs for real).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import ClassVar

import anyio
import pytest

from silentauth.clock import FakeClock
from silentauth.core.identity import (
    MAX_USER_ID_LENGTH,
    GuardedIdentity,
    Identity,
    IdentityProvider,
    LocalUsers,
    RequestInfo,
    as_identity_provider,
    valid_identity,
)
from silentauth.core.passwords import Passwords
from silentauth.core.ports import User
from silentauth.errors import (
    ConfigError,
    IdentityUnavailable,
    InvalidRequest,
    OAuthError,
    StoreUnavailable,
)
from silentauth.stores.sqlite import SQLiteStore

pytestmark = pytest.mark.anyio

REQUEST = RequestInfo(ip="192.0.2.1")


class Timed:
    """A fake monotonic clock, and a ``sleep`` that moves it and remembers each pause."""

    def __init__(self) -> None:
        self.clock = FakeClock(1000.0)
        self.pauses: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.pauses.append(seconds)
        self.clock.advance(seconds)


class Provider:
    """A directory whose answers and timings the test sets: ``carol`` is known."""

    def __init__(self, timed: Timed) -> None:
        self.timed = timed
        self.cost = 0.0  # fake seconds the next call takes
        self.failure: BaseException | None = None
        self.answer: object = None  # returned instead of the verdict when set
        self.hang = False

    async def authenticate(self, username: str, password: str, request: RequestInfo) -> Identity | None:
        self.timed.clock.advance(self.cost)
        if self.hang:
            await anyio.sleep(10)
        if self.failure is not None:
            raise self.failure
        if self.answer is not None:
            return self.answer  # type: ignore[return-value]  # a plug-in bug under test
        return Identity("u-1", "carol") if (username, password) == ("carol", "pw") else None


def guarded(provider: Provider, *, timeout: float = 0.3, builtin: bool | None = None) -> GuardedIdentity:
    timed = provider.timed
    if builtin is None:  # the default, as the app factory builds it for a plug-in
        return GuardedIdentity(provider, timeout=timeout, monotonic=timed.clock, sleep=timed.sleep)
    return GuardedIdentity(provider, timeout=timeout, builtin=builtin, monotonic=timed.clock, sleep=timed.sleep)


def identity_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "silentauth.identity"]


# --- refusals take as long as a success lately took ---


async def test_a_refusal_is_padded_to_the_moving_average_of_successes() -> None:
    timed = Timed()
    provider = Provider(timed)
    guard = guarded(provider)
    provider.cost = 0.1
    assert await guard.authenticate("carol", "pw", REQUEST) == Identity("u-1", "carol")
    provider.cost = 0.0
    began = timed.clock()
    assert await guard.authenticate("nobody", "x", REQUEST) is None
    assert timed.clock() - began == pytest.approx(0.1)
    # A slower success moves the average by a fifth of the difference: 0.8 * 0.1 + 0.2 * 0.2.
    provider.cost = 0.2
    await guard.authenticate("carol", "pw", REQUEST)
    provider.cost = 0.02  # a refusal that took some time itself is padded by the rest
    began = timed.clock()
    assert await guard.authenticate("carol", "wrong", REQUEST) is None
    assert timed.clock() - began == pytest.approx(0.12)
    assert timed.pauses == pytest.approx([0.1, 0.1])


async def test_a_refusal_slower_than_the_successes_or_before_any_is_not_delayed() -> None:
    timed = Timed()
    provider = Provider(timed)
    guard = guarded(provider)
    assert await guard.authenticate("nobody", "x", REQUEST) is None  # nothing to match yet
    provider.cost = 0.1
    await guard.authenticate("carol", "pw", REQUEST)
    provider.cost = 0.5
    assert await guard.authenticate("nobody", "x", REQUEST) is None
    assert timed.pauses == []


async def test_the_builtin_table_is_neither_padded_nor_given_a_deadline() -> None:
    # It equalises by itself (a dummy Argon2 verify), and its queue may grow in a login storm.
    timed = Timed()
    provider = Provider(timed)
    guard = guarded(provider, timeout=0.05, builtin=True)
    provider.cost = 0.1
    await guard.authenticate("carol", "pw", REQUEST)
    provider.cost = 0.0
    assert await guard.authenticate("nobody", "x", REQUEST) is None
    assert timed.pauses == []

    class Slow(Provider):
        async def authenticate(self, username: str, password: str, request: RequestInfo) -> Identity | None:
            await anyio.sleep(0.15)  # three deadlines of a plug-in
            return await super().authenticate(username, password, request)

    slow = GuardedIdentity(Slow(timed), timeout=0.05, builtin=True, monotonic=timed.clock, sleep=timed.sleep)
    assert await slow.authenticate("carol", "pw", REQUEST) == Identity("u-1", "carol")


# --- failures become 503 with Retry-After, logged once per outage ---


class Broken(OAuthError):
    """What a plug-in might raise for its own backend failing."""

    error = "server_error"
    status_code: ClassVar[int] = 500


@pytest.mark.parametrize(
    "failure, logged",
    [
        (ConnectionError("ldap://dir is down; password=pw"), "failed (ConnectionError)"),
        (Broken("the directory's 500"), "failed (Broken)"),
        ("hang", "timed out"),
        ("nonsense", "failed (TypeError)"),
    ],
)
async def test_a_failing_provider_is_a_503_with_retry_after_and_one_log_line(
    caplog: pytest.LogCaptureFixture, failure: object, logged: str
) -> None:
    caplog.set_level(logging.WARNING, logger="silentauth.identity")
    timed = Timed()
    provider = Provider(timed)
    if failure == "hang":
        provider.hang = True
    elif failure == "nonsense":
        provider.answer = "u-1"  # a str, not an Identity
    else:
        assert isinstance(failure, BaseException)
        provider.failure = failure
    guard = guarded(provider, timeout=0.05)
    for _ in range(3):
        with pytest.raises(IdentityUnavailable) as err:
            await guard.authenticate("carol", "pw", REQUEST)
        assert err.value.status_code == 503
        assert err.value.headers()["Retry-After"] == "1"  # never 0, even for a short deadline
        assert err.value.__cause__ is None  # nothing of the plug-in's exception travels on
    # Once when the outage starts, with the kind of failure and never its message.
    assert identity_lines(caplog) == [f"identity provider {logged}; logins answer 503 until it recovers"]
    provider.hang, provider.failure, provider.answer = False, None, None
    timed.clock.advance(42.25)
    assert await guard.authenticate("carol", "pw", REQUEST) == Identity("u-1", "carol")
    assert await guard.authenticate("carol", "pw", REQUEST) == Identity("u-1", "carol")
    # And once when it ends, with how long it lasted.
    assert identity_lines(caplog)[1:] == ["identity provider recovered after 42.2 s"]


async def test_retry_after_is_the_deadline_rounded() -> None:
    timed = Timed()
    provider = Provider(timed)
    provider.failure = RuntimeError("bug")
    with pytest.raises(IdentityUnavailable) as err:
        await guarded(provider, timeout=3.4).authenticate("carol", "pw", REQUEST)
    assert err.value.headers()["Retry-After"] == "3"
    provider.failure = Broken()
    with pytest.raises(IdentityUnavailable) as err:
        await guarded(provider, timeout=2.6).authenticate("carol", "pw", REQUEST)
    assert err.value.headers()["Retry-After"] == "3"
    provider.failure, provider.answer = None, Identity("")
    with pytest.raises(IdentityUnavailable) as err:
        await guarded(provider, timeout=4.4).authenticate("carol", "pw", REQUEST)
    assert err.value.headers()["Retry-After"] == "4"


async def test_a_plugins_4xx_is_the_clients_answer_and_a_store_outage_its_own(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="silentauth.identity")
    timed = Timed()
    provider = Provider(timed)
    guard = guarded(provider)

    class Teapot(OAuthError):
        status_code: ClassVar[int] = 499  # the last 4xx still passes through

    for failure in (InvalidRequest("User names here are e-mail addresses."), Teapot(), StoreUnavailable("db")):
        provider.failure = failure
        with pytest.raises(type(failure)):
            await guard.authenticate("carol", "pw", REQUEST)
    assert identity_lines(caplog) == []  # the provider is not down


# --- what may become a subject ---


@pytest.mark.parametrize("user_id", ["u", "x" * MAX_USER_ID_LENGTH, "ü-日本"])
def test_an_identity_of_1_to_256_printable_characters_is_a_subject(user_id: str) -> None:
    assert valid_identity(Identity(user_id, "name"))


@pytest.mark.parametrize(
    "value",
    [
        Identity(""),
        Identity("x" * (MAX_USER_ID_LENGTH + 1)),  # never truncated: two ids would become one
        Identity("u\n1"),
        Identity("u\u200b1"),  # a format character (Cf)
        Identity(123),  # type: ignore[arg-type]
        Identity("u-1", None),  # type: ignore[arg-type]
        "u-1",
        None,
    ],
)
def test_anything_else_is_not(value: object) -> None:
    assert not valid_identity(value)


def test_an_object_without_authenticate_is_a_config_error_naming_the_setting() -> None:
    with pytest.raises(ConfigError) as err:
        as_identity_provider(object)
    assert err.value.name == "IDENTITY"
    assert str(err.value) == (
        "invalid setting SILENTAUTH_IDENTITY: <class 'object'> has no "
        "'async def authenticate(username, password, request)'"
    )
    provider = Provider(Timed())
    assert as_identity_provider(provider) is provider
    assert isinstance(provider, IdentityProvider)


# --- the built-in table ---


async def test_local_users_checks_the_normalized_name_and_the_argon2_hash(tmp_path: Path) -> None:
    store = SQLiteStore(f"sqlite:///{tmp_path / 'users.db'}")
    await store.open()
    try:
        passwords = Passwords(time_cost=1, memory_cost=1024, parallelism=1)
        await store.add_user(User("u-7", "alice", passwords.hash("secret"), 0.0))
        table = LocalUsers(store, passwords)
        assert await table.authenticate("  ALICE ", "secret", REQUEST) == Identity("u-7", "alice")
        assert await table.authenticate("alice", "Secret", REQUEST) is None
        assert await table.authenticate("bob", "secret", REQUEST) is None
    finally:
        await store.close()
