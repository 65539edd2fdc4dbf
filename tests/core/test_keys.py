"""Public JWKs in, verify-only keys out; a ring publishes exactly the keys it verifies with."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from silentauth.core.encoding import b64encode
from silentauth.core.keys import KeyManager, KeyRing, MasterKey, SigningKey
from silentauth.core.ports import StoredKey
from silentauth.errors import ConfigError
from silentauth.stores.sqlite import SQLiteStore

NOW = 1_800_000_000.0


def make_key(kid: str = "k1", created: float = NOW - 10, not_after: float = NOW + 3600) -> SigningKey:
    private = ec.generate_private_key(ec.SECP256R1())
    return SigningKey(kid, private.public_key(), private, created, not_after)


def test_a_published_jwk_verifies_what_its_key_signed_and_nothing_else() -> None:
    key = make_key("k1")
    public = SigningKey.from_jwk(key.jwk())
    signature = key.sign(b"header.payload")
    assert public.kid == "k1"
    assert public.verify(b"header.payload", signature)
    assert not public.verify(b"header.payload!", signature)
    with pytest.raises(ValueError, match="no private part"):
        public.sign(b"header.payload")


def test_a_key_from_a_jwk_carries_no_expiry_of_its_own() -> None:
    # The issuer's JWKS decides when a key goes away; the JWK itself has no end.
    public = SigningKey.from_jwk(make_key("k1").jwk())
    ring = KeyRing([public], verify_grace=0)
    assert ring.get("k1", 1e15) is public
    assert ring.signing_key(NOW) is None  # and it never signs


@pytest.mark.parametrize(
    "change",
    [
        {"kty": "RSA"},
        {"crv": "P-384"},  # P-256 coordinates under another curve's name
        {"kty": None},
        {"d": "AAAA"},  # a private key where only a public one belongs
    ],
)
def test_jwks_that_are_not_public_p256_keys_are_refused(change: dict[str, Any]) -> None:
    jwk = {**make_key().jwk(), **change}
    with pytest.raises(ValueError):
        SigningKey.from_jwk(jwk)


def test_a_retired_key_leaves_the_jwks_when_it_stops_verifying() -> None:
    old = make_key("old", created=NOW - 100, not_after=NOW - 10)
    ring = KeyRing([old, make_key("new", created=NOW - 5)], verify_grace=60)
    end = NOW + 50  # not_after + grace
    for now in (end - 0.5, end):
        published = "old" in [k["kid"] for k in ring.jwks(now)["keys"]]
        assert published == (ring.get("old", now) is not None)
    assert ring.get("old", end) is None


def test_a_key_whose_start_has_come_is_no_longer_upcoming() -> None:
    current = make_key("current", created=NOW - 100)
    nxt = make_key("next", created=NOW + 100)
    ring = KeyRing([current, nxt], verify_grace=60)
    assert ring.upcoming(NOW) is nxt
    assert ring.signing_key(NOW + 100) is nxt
    assert ring.upcoming(NOW + 100) is None


def test_a_signature_with_s_at_exactly_half_the_order_is_low_s_and_verifies() -> None:
    # Low-S (BIP 62) accepts s <= n // 2. Such a signature cannot be waited for,
    # so pick the nonce and s, and solve s = k^-1 (z + r d) for the private key d.
    n = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
    message = b"header.payload"
    z = int.from_bytes(hashlib.sha256(message).digest(), "big")
    k, s = 0x1234567, n // 2
    r = ec.derive_private_key(k, ec.SECP256R1()).public_key().public_numbers().x % n
    d = (s * k - z) * pow(r, -1, n) % n
    private = ec.derive_private_key(d, ec.SECP256R1())
    key = SigningKey("k1", private.public_key(), private, NOW, NOW + 60)
    signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    assert key.verify(message, signature)
    high = r.to_bytes(32, "big") + (n - s).to_bytes(32, "big")  # the same signature, high-S
    assert not key.verify(message, high)


@pytest.mark.parametrize("length", [0, 63, 65, 128])
def test_a_signature_of_any_length_but_64_bytes_is_refused(length: int) -> None:
    key = make_key("k1")
    signature = key.sign(b"header.payload")
    assert len(signature) == 64
    # Truncated, padded or doubled: never valid, and never handed to the curve code.
    forged = (signature * 2)[:length]
    assert not key.verify(b"header.payload", forged)


@pytest.mark.anyio
async def test_the_successor_is_made_exactly_two_prepublication_periods_before_the_end(tmp_path: Path) -> None:
    store = SQLiteStore(f"sqlite:///{tmp_path / 'keys.db'}")
    await store.open()
    try:
        manager = KeyManager(store, MasterKey(b"k" * 32), lifetime=1000, verify_grace=60, prepublish=100)
        first = (await manager.load(NOW)).signing_key(NOW)
        assert first is not None and first.not_after == NOW + 1000
        await manager.load(NOW + 1000 - 250)  # two and a half periods left: not yet
        assert len(await store.list_keys()) == 1
        ring = await manager.load(NOW + 1000 - 200)  # exactly two periods left
        keys = await store.list_keys()
        assert len(keys) == 2
        successor = next(k for k in keys if k.kid != first.kid)
        assert successor.created_at == NOW + 1000 - 100  # signs one period later
        assert ring.signing_key(NOW + 1000 - 200) is not None
    finally:
        await store.close()



def test_a_published_jwk_names_the_curve_the_algorithm_and_the_use() -> None:
    key = make_key("k1")
    nums = key.public.public_numbers()
    assert key.jwk() == {
        "kty": "EC",
        "crv": "P-256",
        "x": b64encode(nums.x.to_bytes(32, "big")),
        "y": b64encode(nums.y.to_bytes(32, "big")),
        "kid": "k1",
        "alg": "ES256",
        "use": "sig",
    }


def test_a_key_stops_signing_at_its_end() -> None:
    key = make_key("k1", created=NOW - 10, not_after=NOW)
    ring = KeyRing([key], verify_grace=60)
    assert ring.signing_key(NOW - 0.001) is key
    assert ring.signing_key(NOW) is None


@pytest.mark.anyio
async def test_rotate_returns_the_key_it_stored(tmp_path: Path) -> None:
    store = SQLiteStore(f"sqlite:///{tmp_path / 'keys.db'}")
    await store.open()
    try:
        manager = KeyManager(store, MasterKey(b"k" * 32), lifetime=1000, verify_grace=60, prepublish=100)
        key = await manager.rotate(NOW)
        assert key.private is not None and (key.created_at, key.not_after) == (NOW + 100, NOW + 1100)
        assert len(key.kid) == 16  # 96 random bits, base64url
        (stored,) = await store.list_keys()
        assert (stored.kid, stored.created_at, stored.not_after) == (key.kid, NOW + 100, NOW + 1100)
        assert json.loads(stored.public_jwk) == key.jwk()
        assert key.verify(b"m", key.sign(b"m"))
    finally:
        await store.close()


SECRET = bytes(range(32))


def test_the_master_key_comes_from_the_secret_then_the_file_then_beside_the_sqlite_db(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    label = "probe"
    expected = MasterKey(SECRET).derive(label)
    assert MasterKey.from_settings(b64encode(SECRET), "", "postgresql://db").derive(label) == expected
    passphrase = "a passphrase that is long enough to be a secret"
    assert MasterKey.from_settings(passphrase, "", "").derive(label) == MasterKey(passphrase.encode()).derive(label)
    secret_file = tmp_path / "secret"
    secret_file.write_text(b64encode(SECRET) + "\n")
    secret_file.chmod(0o600)
    assert MasterKey.from_settings("", str(secret_file), "sqlite:///x.db").derive(label) == expected
    # Beside the SQLite file: made once (mode 0600), then read back.
    db = tmp_path / "data.db"
    made = MasterKey.from_settings("", "", f"sqlite:///{db}").derive(label)
    key_file = tmp_path / "data.db.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert MasterKey.from_settings("", "", f"sqlite:///{db}").derive(label) == made
    # An in-memory or unnamed database keeps its key in the working directory.
    monkeypatch.chdir(tmp_path)
    for url in ("sqlite:///:memory:", "sqlite://"):
        MasterKey.from_settings("", "", url)
        assert (tmp_path / "silentauth.db.key").exists()
        (tmp_path / "silentauth.db.key").unlink()


def test_a_shared_store_needs_the_secret_given() -> None:
    with pytest.raises(ConfigError) as refused:
        MasterKey.from_settings("", "", "postgresql://db/silentauth")
    assert refused.value.name == "SECRET_KEY"
    assert str(refused.value) == (
        "invalid setting SILENTAUTH_SECRET_KEY: required with a shared store: every instance must hold the same secret"
    )


@pytest.mark.anyio
async def test_keys_stored_by_earlier_releases_still_decrypt(tmp_path: Path) -> None:
    # The key-encryption key's label is part of the storage format: changing it
    # would leave every stored signing key undecryptable.
    store = SQLiteStore(f"sqlite:///{tmp_path / 'keys.db'}")
    await store.open()
    try:
        master = MasterKey(SECRET)
        private = ec.generate_private_key(ec.SECP256R1())
        der = private.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        nonce = b"\x01" * 12
        blob = nonce + AESGCM(master.derive("silentauth key-encryption v1")).encrypt(nonce, der, b"old")
        public = SigningKey("old", private.public_key(), None, NOW - 10, NOW + 1000)
        await store.add_key(StoredKey("old", "ES256", blob, json.dumps(public.jwk()), NOW - 10, NOW + 1000))
        ring = await KeyManager(store, master, lifetime=1000, verify_grace=60).load(NOW)
        signer = ring.signing_key(NOW)
        assert signer is not None and signer.kid == "old"
        assert public.verify(b"m", signer.sign(b"m"))
    finally:
        await store.close()


def test_pre_publication_is_at_most_a_quarter_of_the_key_lifetime_and_off_by_default(tmp_path: Path) -> None:
    store = SQLiteStore(f"sqlite:///{tmp_path / 'keys.db'}")
    assert KeyManager(store, MasterKey(SECRET), lifetime=1000, verify_grace=60, prepublish=900).prepublish == 250
    assert KeyManager(store, MasterKey(SECRET), lifetime=1000, verify_grace=60, prepublish=240).prepublish == 240
    assert KeyManager(store, MasterKey(SECRET), lifetime=1000, verify_grace=60).prepublish == 0


def test_a_ring_lists_its_keys_oldest_first() -> None:
    # `silentauth keys list` prints the ring in this order.
    old, new = make_key("old", created=NOW - 100), make_key("new", created=NOW - 5)
    ring = KeyRing([new, old], verify_grace=60)
    assert [k.kid for k in ring] == ["old", "new"] and len(ring) == 2


# --- SECRET_KEY as earlier releases read it: changing the reading changes every derived key ---


def derived(secret_key: str) -> bytes:
    return MasterKey.from_settings(secret_key, "", "postgresql://db/x").derive("probe")


@pytest.mark.parametrize("size", [32, 33, 34, 37, 40])
def test_an_unpadded_base64url_secret_of_any_length_is_decoded(size: int) -> None:
    # 43, 44, 46, 50 and 54 characters: every remainder of the length by 4 that base64 allows.
    raw = bytes(range(100, 100 + size))
    text = b64encode(raw)
    assert "=" not in text
    assert derived(text) == MasterKey(raw).derive("probe")


def test_a_padded_base64_secret_is_a_passphrase() -> None:
    # Earlier releases read "=" as outside the alphabet: such a secret was always a passphrase.
    text = base64.urlsafe_b64encode(bytes(range(34))).decode()
    assert text.endswith("==")
    assert derived(text) == MasterKey(text.encode()).derive("probe")


def test_a_passphrase_one_over_a_multiple_of_four_long_stays_a_passphrase() -> None:
    # 45 characters, 44 of them in the base64url alphabet: the lenient decoder would
    # skip the "!" and read 33 bytes, but a length of 4k + 1 is never base64.
    text = "correct-horse-battery-staple-and-more-words!x"
    assert len(text) == 45
    assert derived(text) == MasterKey(text.encode()).derive("probe")


def test_a_secret_key_file_that_is_not_base64url_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_text("not=base64\n")
    path.chmod(0o600)
    with pytest.raises(ConfigError) as refused:
        MasterKey.from_settings("", str(path), "sqlite:///x.db")
    assert refused.value.name == "SECRET_KEY_FILE"
    assert str(refused.value) == f"invalid setting SILENTAUTH_SECRET_KEY_FILE: {path} does not hold a base64url secret"


def test_a_secret_under_32_bytes_is_refused_saying_so() -> None:
    with pytest.raises(ConfigError) as refused:
        MasterKey(b"k" * 31)
    assert str(refused.value) == "invalid setting SILENTAUTH_SECRET_KEY: must hold at least 32 bytes of entropy"


def test_each_purpose_gets_its_own_derived_key() -> None:
    # One leaked sub-key (say the cookie key) must not be another purpose's key.
    master = MasterKey(SECRET)
    assert len({master.derive("a"), master.derive("b"), master.derive("")}) == 3


def test_the_generated_secret_is_256_random_bits_beside_a_database_in_any_directory(tmp_path: Path) -> None:
    # A directory may end in ":" (a legal name): the key still lands beside the database.
    folder = tmp_path / "backup:"
    folder.mkdir()
    url = f"sqlite:///{tmp_path}/backup://auth.db"
    made = MasterKey.from_settings("", "", url).derive("probe")
    key_file = folder / "auth.db.key"
    raw = base64.urlsafe_b64decode(key_file.read_text() + "=")
    assert len(raw) == 32
    assert made == MasterKey(raw).derive("probe")
