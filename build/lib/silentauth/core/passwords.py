"""Argon2id password hashing, with equal cost for unknown users."""

from __future__ import annotations

import unicodedata

import anyio.to_thread
from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from silentauth.errors import InvalidRequest

MAX_PASSWORD_BYTES = 1024
MAX_USERNAME_LENGTH = 150


def normalize_username(name: str) -> str:
    """NFKC + casefold, so look-alike spellings name one account, not two."""
    norm = unicodedata.normalize("NFKC", name).strip().casefold()
    if not norm or len(norm) > MAX_USERNAME_LENGTH:
        raise InvalidRequest(f"The user name must be 1-{MAX_USERNAME_LENGTH} characters.")
    if any(unicodedata.category(c).startswith("C") for c in norm):
        raise InvalidRequest("The user name contains control characters.")
    return norm


class Passwords:
    """Hashes and verifies passwords; runs Argon2 off the event loop."""

    def __init__(self, time_cost: int = 2, memory_cost: int = 19456, parallelism: int = 1) -> None:
        # Defaults: OWASP's Argon2id minimum (19 MiB, t=2, p=1) — about 20 ms here.
        self._hasher = PasswordHasher(
            time_cost=time_cost,
            memory_cost=memory_cost,
            parallelism=parallelism,
            type=Type.ID,  # pragma: no mutate - argon2-cffi's default too; kept explicit
        )
        # Any text will do (hence no mutate): it only gives unknown users a hash to verify.
        self._dummy = self._hasher.hash("silentauth dummy password")  # pragma: no mutate

    @property
    def parameters(self) -> str:
        p = self._hasher
        return f"argon2id t={p.time_cost} m={p.memory_cost}KiB p={p.parallelism}"

    def hash(self, password: str) -> str:
        try:
            encoded = password.encode("utf-8")  # pragma: no mutate - codec names ignore case
        except UnicodeEncodeError:
            raise InvalidRequest("The password is not valid Unicode text.") from None
        if len(encoded) > MAX_PASSWORD_BYTES:
            raise InvalidRequest(f"The password is longer than {MAX_PASSWORD_BYTES} bytes.")
        return self._hasher.hash(password)

    def verify_sync(self, password_hash: str | None, password: str) -> bool:
        """True if ``password`` matches; an unknown user costs one full verify too."""
        if len(password.encode("utf-8", "surrogatepass")) > MAX_PASSWORD_BYTES:
            return False
        try:
            ok = self._hasher.verify(password_hash or self._dummy, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError, UnicodeEncodeError):
            return False
        return ok and password_hash is not None

    async def verify(self, password_hash: str | None, password: str) -> bool:
        return await anyio.to_thread.run_sync(self.verify_sync, password_hash, password)
