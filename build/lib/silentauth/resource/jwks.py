"""Verification keys from the issuer's JWK Set, fetched over HTTP and cached.

The token service publishes its public keys at ``/.well-known/jwks.json``.
A :class:`JWKSKeySource` holds the last copy in memory; looking a key up is a
dict access with no I/O, so it can sit in the synchronous verify path.

A ``kid`` it does not know usually means the issuer rotated its keys, so the
set is fetched again — but at most once per ``refetch_interval`` seconds, and
one fetch serves every waiting request. Tokens with made-up ``kid`` values
therefore cannot make us hammer the issuer, whatever the request rate.

.. warning::
   Only EC P-256 keys for ES256 are taken from the set; anything else (RSA,
   symmetric ``oct`` keys, private keys) is skipped, so a poisoned set cannot
   introduce an algorithm we would not accept anyway.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import anyio
import httpx

from silentauth.core.keys import ALG, SigningKey
from silentauth.errors import UnknownKeyId

log = logging.getLogger("silentauth.resource")

MAX_KID_LENGTH = 256
MAX_JWKS_BYTES = 256 * 1024


def parse_jwks(document: Any) -> dict[str, SigningKey]:
    """The usable ES256 verification keys of a JWK Set, by ``kid``."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("not a JWK Set")
    keys: dict[str, SigningKey] = {}
    for jwk in document["keys"]:
        if not isinstance(jwk, dict) or not isinstance(jwk.get("kid"), str):
            continue
        if jwk.get("alg", ALG) != ALG or jwk.get("use", "sig") != "sig":
            continue
        try:
            keys[jwk["kid"]] = SigningKey.from_jwk(jwk)
        except (ValueError, KeyError, TypeError):
            continue  # a key type we do not use, or a malformed entry
    return keys


class JWKSKeySource:
    """A cached JWK Set; use :meth:`get` as ``AccessTokenVerifier``'s ``keys``.

    ``client`` may be shared with the application (it is then not closed
    here); ``monotonic`` drives the rate limit and can be a fake clock in tests.
    """

    def __init__(
        self,
        url: str,
        *,
        refetch_interval: float = 10.0,
        client: httpx.AsyncClient | None = None,
        timeout: float = 3.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self.refetch_interval = refetch_interval
        self.timeout = timeout
        # Completed HTTP fetches, successful or not: for observability and tests.
        self.fetches = 0
        self._client = client
        self._own_client = client is None
        self._monotonic = monotonic
        self._keys: dict[str, SigningKey] = {}
        self._fetched_at: float | None = None
        self._lock = anyio.Lock()

    def get(self, kid: str, now: float) -> SigningKey | None:
        """The key for ``kid``; raises :class:`UnknownKeyId` if a refetch may find it."""
        key = self._keys.get(kid)
        if key is None and len(kid) <= MAX_KID_LENGTH:
            raise UnknownKeyId(kid)
        return key

    @property
    def kids(self) -> frozenset[str]:
        """The key ids currently held."""
        return frozenset(self._keys)

    def may_refetch(self) -> bool:
        """Whether the rate limit allows a fetch now."""
        last = self._fetched_at
        return last is None or self._monotonic() - last >= self.refetch_interval

    async def ensure_kid(self, kid: str) -> bool:
        """Make ``kid`` known if the issuer has it: True when it is held afterwards.

        Waiters queue on one lock, so concurrent requests with a new ``kid``
        cause one fetch; after it they find the key (or the rate limit) at once.
        """
        if kid in self._keys:
            return True
        if len(kid) > MAX_KID_LENGTH:
            return False
        async with self._lock:
            if kid in self._keys:
                return True
            if not self.may_refetch():
                return False
            await self.refresh()
        return kid in self._keys

    async def refresh(self) -> bool:
        """Fetch the set now (no rate limit); keep the old keys if it fails."""
        self._fetched_at = self._monotonic()
        try:
            keys = parse_jwks(await self._fetch())
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("JWKS fetch from %s failed: %s", self.url, type(exc).__name__)
            return False
        finally:
            self.fetches += 1
        # Replace wholesale: a key the issuer withdrew must stop verifying.
        self._keys = keys
        return True

    async def _fetch(self) -> Any:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout)
        response = await self._client.get(
            self.url, headers={"Accept": "application/json"}, timeout=self.timeout
        )
        response.raise_for_status()
        if len(response.content) > MAX_JWKS_BYTES:
            raise ValueError("JWK Set too large")
        return response.json()

    async def follow(self, interval: float = 300.0) -> None:
        """Refresh every ``interval`` seconds so withdrawn keys drop out; never raises."""
        while True:
            await anyio.sleep(interval)
            async with self._lock:
                await self.refresh()

    async def aclose(self) -> None:
        """Close the HTTP client if this source created it."""
        if self._own_client and self._client is not None:
            await self._client.aclose()
            self._client = None
