"""The client registry on its own: a real SQLite file, a fake clock, a fake monotonic clock.

Two registries over one store stand for two instances of the service: what
one registers or removes, the other learns within :data:`CACHE_SECONDS`.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from silentauth.clock import FakeClock
from silentauth.core.clients import (
    BUILTIN,
    CACHE_SECONDS,
    ClientCredentials,
    ClientRegistry,
    hash_secret,
    valid_client_id,
)
from silentauth.core.ports import ClientRecord
from silentauth.errors import AlreadyExists, InvalidClient
from silentauth.stores.sqlite import SQLiteStore

pytestmark = pytest.mark.anyio


class Instances:
    """Two registries over one store: ``here`` on a fake monotonic clock, ``elsewhere``."""

    def __init__(self, store: SQLiteStore) -> None:
        self.store = store
        self.clock = FakeClock(1_800_000_000.0)
        self.ticks = FakeClock(100.0)
        self.here = ClientRegistry(store, self.clock, monotonic=self.ticks)
        self.elsewhere = ClientRegistry(store, self.clock, monotonic=self.ticks)


@pytest.fixture
async def reg(tmp_path: Path) -> AsyncIterator[Instances]:
    store = SQLiteStore(f"sqlite:///{tmp_path / 'clients.db'}")
    await store.open()
    try:
        yield Instances(store)
    finally:
        await store.close()


def test_a_secret_is_stored_as_its_sha256() -> None:
    assert hash_secret("s3cret") == "sha256$" + hashlib.sha256(b"s3cret").hexdigest()


@pytest.mark.parametrize("client_id", ["a", "gw-1.prod_~x", "A" * 128])
def test_ids_of_1_to_128_safe_characters_may_be_registered(client_id: str) -> None:
    assert valid_client_id(client_id)


@pytest.mark.parametrize("client_id", ["", "A" * 129, "has space", "a/b", "a:b", "é"])
def test_other_ids_may_not(client_id: str) -> None:
    assert not valid_client_id(client_id)


async def test_registering_a_confidential_client_gives_its_secret_once(reg: Instances) -> None:
    reg.clock.advance(7.0)
    record, secret = await reg.here.register("gateway", "The API gateway " + "x" * 300)
    assert secret is not None and len(secret) == 43  # 256 bits, URL-safe base64 without padding
    assert record == ClientRecord("gateway", hash_secret(secret), ("The API gateway " + "x" * 300)[:200], reg.clock())
    assert await reg.store.get_client("gateway") == record
    assert record.confidential
    unnamed, other = await reg.here.register("gateway-2")
    assert other != secret and unnamed.name == ""


async def test_registering_a_public_client_gives_no_secret(reg: Instances) -> None:
    record, secret = await reg.here.register("spa", "A page", confidential=False)
    assert secret is None and record.secret_hash == "" and not record.confidential
    assert await reg.here.authenticate(ClientCredentials("spa")) == record


async def test_builtin_or_malformed_ids_cannot_be_registered_or_removed(reg: Instances) -> None:
    for builtin in BUILTIN:
        with pytest.raises(AlreadyExists, match=f"client '{builtin}' is built in"):
            await reg.here.register(builtin)
        with pytest.raises(ValueError, match=f"client '{builtin}' is built in and cannot be removed"):
            await reg.here.remove(builtin)
    with pytest.raises(ValueError) as err:
        await reg.here.register("has space")
    assert str(err.value) == "a client id is 1-128 characters of A-Z a-z 0-9 . _ ~ -"
    assert await reg.here.remove("never-registered") is False
    assert await reg.store.list_clients() == []


async def test_the_builtin_clients_are_public_and_listed_first(reg: Instances) -> None:
    browser = await reg.here.get("browser")
    assert browser == ClientRecord("browser", "", BUILTIN["browser"], 0.0)
    assert not await reg.here.is_confidential("native")
    record, _ = await reg.here.register("gateway")
    assert await reg.here.is_confidential("gateway")
    assert not await reg.here.is_confidential("unknown")
    assert await reg.here.all() == [
        ClientRecord("browser", "", BUILTIN["browser"], 0.0),
        ClientRecord("native", "", BUILTIN["native"], 0.0),
        record,
    ]


async def test_a_malformed_id_is_unknown(reg: Instances) -> None:
    assert await reg.here.get("has space") is None
    assert await reg.here.get("A" * 129) is None


# --- the look-up cache: another instance's change takes effect within CACHE_SECONDS ---


async def test_a_client_removed_elsewhere_is_known_here_until_the_cache_lapses(reg: Instances) -> None:
    record, _ = await reg.elsewhere.register("gateway")
    assert await reg.here.get("gateway") == record
    await reg.elsewhere.remove("gateway")
    reg.ticks.advance(CACHE_SECONDS - 0.01)
    assert await reg.here.get("gateway") == record
    reg.ticks.advance(0.01)
    assert await reg.here.get("gateway") is None


async def test_a_client_registered_elsewhere_is_unknown_here_until_the_cache_lapses(reg: Instances) -> None:
    assert await reg.here.get("gateway") is None
    record, _ = await reg.elsewhere.register("gateway")
    assert await reg.here.get("gateway") is None
    reg.ticks.advance(CACHE_SECONDS)
    assert await reg.here.get("gateway") == record


async def test_registering_or_removing_here_takes_effect_here_at_once(reg: Instances) -> None:
    assert await reg.here.get("gateway") is None  # cached as unknown
    record, _ = await reg.here.register("gateway")
    assert await reg.here.get("gateway") == record
    assert await reg.here.remove("gateway") is True
    assert await reg.here.get("gateway") is None


async def test_the_cache_is_emptied_past_ten_thousand_ids(reg: Instances) -> None:
    # Unknown but well-formed ids are cached too: without a bound, a caller could grow it forever.
    record, _ = await reg.elsewhere.register("gateway")
    assert await reg.here.get("gateway") == record
    await reg.elsewhere.remove("gateway")
    for i in range(9_999):
        await reg.here.get(f"probe-{i}")
    await reg.here.get("probe-last")  # 10,000 cached before it: not past the bound, kept
    assert await reg.here.get("gateway") == record  # still the cached answer
    await reg.here.get("one-more")  # 10,001 cached before it: emptied first
    assert await reg.here.get("gateway") is None


async def test_any_confidential_caches_no_for_a_while_and_yes_for_good(reg: Instances) -> None:
    assert await reg.here.any_confidential() is False
    await reg.elsewhere.register("spa", confidential=False)
    await reg.elsewhere.register("gateway")
    reg.ticks.advance(CACHE_SECONDS - 0.01)
    assert await reg.here.any_confidential() is False  # cached
    reg.ticks.advance(0.01)
    assert await reg.here.any_confidential() is True
    await reg.elsewhere.remove("gateway")
    reg.ticks.advance(100 * CACHE_SECONDS)
    # Forgetting "yes" could let a secret-less refresh of its tokens through.
    assert await reg.here.any_confidential() is True


async def test_a_confidential_client_seen_or_registered_here_is_a_yes_for_good(reg: Instances) -> None:
    assert await reg.here.any_confidential() is False
    await reg.elsewhere.register("gateway")
    await reg.here.get("gateway")  # a look-up shows it is confidential
    await reg.elsewhere.remove("gateway")
    assert await reg.here.any_confidential() is True  # at once, and kept though it is gone
    third = ClientRegistry(reg.store, reg.clock, monotonic=reg.ticks)
    assert await third.any_confidential() is False
    await third.register("spa", confidential=False)
    assert await third.any_confidential() is False
    await third.register("gateway")
    await reg.elsewhere.remove("gateway")
    assert await third.any_confidential() is True


# --- authentication (RFC 6749 §2.3.1) ---


async def test_a_confidential_client_authenticates_with_its_secret_only(reg: Instances) -> None:
    record, secret = await reg.here.register("gateway")
    assert secret is not None
    creds = ClientCredentials("gateway", secret, "client_secret_basic")
    assert await reg.here.authenticate(creds) == record
    for bad in (ClientCredentials("gateway", secret + "x"), ClientCredentials("gateway", "")):
        with pytest.raises(InvalidClient) as err:
            await reg.here.authenticate(bad)
        assert err.value.status_code == 401
    with pytest.raises(InvalidClient) as err:
        await reg.here.authenticate(ClientCredentials("gateway"))
    assert err.value.error_description == "This client must authenticate with its secret."


async def test_a_secret_for_a_public_or_unknown_client_fails(reg: Instances) -> None:
    await reg.here.register("spa", confidential=False)
    for creds in (
        ClientCredentials("spa", ""),  # the hash of "" is what a public client's secret is compared with
        ClientCredentials("native", ""),
        ClientCredentials("nobody", ""),
        ClientCredentials("nobody", "guess"),
    ):
        with pytest.raises(InvalidClient):
            await reg.here.authenticate(creds)


async def test_without_credentials_the_named_or_default_public_client_is_meant(reg: Instances) -> None:
    assert await reg.here.authenticate(ClientCredentials(None)) is None
    native = await reg.here.authenticate(ClientCredentials(None), default="native")
    assert native is not None and native.client_id == "native"
    browser = await reg.here.authenticate(ClientCredentials("browser"), default="native")
    assert browser is not None and browser.client_id == "browser"
    with pytest.raises(InvalidClient) as err:
        await reg.here.authenticate(ClientCredentials("x" * 300))
    assert err.value.error_description == f"Unknown client {'x' * 128!r}."  # the echo is bounded
