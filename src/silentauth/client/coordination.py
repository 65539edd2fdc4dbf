"""Single-flight refresh: who refreshes, who waits, and what everyone gets.

The :class:`Coordinator` owns the client's token state and makes every
decision; the transports in :mod:`silentauth.client.auth` only move bytes.
The rule that makes refresh single-flight across threads, asyncio tasks and
processes: a caller that saw token ``T`` as due (or got a 401 with it) takes
the store's lock, re-reads the store, and refreshes **only if ``T`` is still
the current token**. Everybody who queued behind the winner finds a newer
token and just uses it.

Failures are shared the same way. A dead refresh token (``invalid_grant``)
clears the store, runs ``on_session_expired`` once, and every waiter raises
:class:`SessionExpired`. A network error or 5xx keeps the tokens and starts a
cooldown (exponential, jittered, at least ``Retry-After``) during which no
caller contacts the token endpoint again; callers whose access token is still
valid carry on with it, the others get :class:`RefreshFailed`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import threading
import time
import weakref
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import anyio
import httpx

from silentauth.client.challenges import oauth_error
from silentauth.client.stores import TokenStore
from silentauth.client.token_set import TokenSet
from silentauth.clock import Clock
from silentauth.errors import RefreshFailed, SessionExpired

log = logging.getLogger("silentauth.client")

# RFC 6749 §5.2 codes after which retrying the same refresh can never succeed.
FATAL_ERRORS = frozenset(
    {"invalid_grant", "invalid_client", "unauthorized_client", "unsupported_grant_type", "invalid_scope"}
)
COOLDOWN_BASE = 1.0
COOLDOWN_MAX = 60.0


class Coordinator:
    """Token state shared by every request of one :class:`TokenAuth`."""

    def __init__(
        self,
        store: TokenStore,
        clock: Clock,
        margin: float,
        jitter: float,
        lock_timeout: float,
        on_session_expired: Callable[[], object] | None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.base_margin = margin
        self.jitter = jitter
        self.lock_timeout = lock_timeout
        self.on_session_expired = on_session_expired
        # Jitter is for load spreading, not secrecy.
        self._rng = random.Random()  # noqa: S311
        self._state = threading.Lock()
        self._gates: weakref.WeakKeyDictionary[Any, anyio.Lock] = weakref.WeakKeyDictionary()
        self._trio_gate: anyio.Lock | None = None
        self._tokens: TokenSet | None = None  # pragma: no mutate - _set below assigns it
        self._margin = margin
        self._ever_had_tokens = False  # pragma: no mutate - None reads as False
        self._callback_armed = True  # pragma: no mutate - _set arms it before any session can end
        self._callback_pending = False  # pragma: no mutate - None reads as False
        self._failures = 0
        self._cooldown_until = 0.0
        self._last_error: BaseException | None = None  # pragma: no mutate - read only after failed() sets it
        self._set(store.load())

    def after_fork(self) -> None:
        """Locks held by other threads at fork time must not stay held here."""
        self._state = threading.Lock()
        self._gates = weakref.WeakKeyDictionary()
        self._trio_gate = None

    # -- state ---------------------------------------------------------------

    @property
    def tokens(self) -> TokenSet | None:
        return self._tokens

    @property
    def margin(self) -> float:
        return self._margin

    def _set(self, tokens: TokenSet | None) -> None:
        with self._state:
            # No mutants: None only ever follows tokens (already counted), and the next grant re-arms.
            if tokens is not None and tokens is not self._tokens:  # pragma: no mutate
                # A new grant gets a new random margin, so a fleet spreads out.
                self._margin = self.base_margin * (1 + self._rng.uniform(0, self.jitter))
                self._ever_had_tokens = True
                self._callback_armed = True
            self._tokens = tokens

    def fresh(self) -> TokenSet | None:
        """The current tokens if no refresh is due (the lock-free fast path)."""
        tokens = self._tokens
        if tokens is not None and not tokens.due(self.clock(), self._margin):
            return tokens
        return None

    def adopt(self, sent: str, new_access: str) -> None:
        """Take a server-pushed ``New-Access-Token`` if ours is still current.

        Kept in memory only: the refresh token is unchanged, and writing the
        file here could overwrite a grant another process rotated meanwhile.
        """
        with self._state:
            current = self._tokens
            if current is None or current.access_token != sent or new_access == sent:
                return
            self._tokens = current.with_access_token(new_access, self.clock())

    def install(self, tokens: TokenSet) -> None:
        """A fresh grant from a login; the caller holds the store lock."""
        self._persist(tokens)
        self._set(tokens)
        self._failures, self._cooldown_until = 0, 0.0

    def forget(self) -> None:
        """Drop the tokens locally (logout); the caller holds the store lock."""
        with contextlib.suppress(OSError):
            self.store.clear()
        self._set(None)

    # -- locking -------------------------------------------------------------

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """The store lock, for threads (blocking, bounded by ``lock_timeout``)."""
        if not self.store.acquire(self.lock_timeout):
            raise RefreshFailed(f"timed out after {self.lock_timeout} s waiting for the token lock")
        try:
            yield
        finally:
            self.store.release()

    def _gate(self) -> anyio.Lock:
        # An anyio.Lock belongs to one event loop; keep one per running loop.
        with self._state:
            try:
                loop: Any = asyncio.get_running_loop()
            except RuntimeError:
                if self._trio_gate is None:
                    self._trio_gate = anyio.Lock()
                return self._trio_gate
            gate = self._gates.get(loop)
            if gate is None:
                gate = self._gates[loop] = anyio.Lock()
            return gate

    @contextlib.asynccontextmanager
    async def alocked(self) -> AsyncIterator[None]:
        """The store lock, for tasks: never blocks the event loop.

        Tasks of one loop queue on an ``anyio.Lock``; only the head of that
        queue polls the store lock, which a thread or process may be holding.
        """
        async with self._gate():
            deadline = time.monotonic() + self.lock_timeout
            while not self.store.acquire(0):
                if time.monotonic() > deadline:
                    raise RefreshFailed(
                        f"timed out after {self.lock_timeout} s waiting for the token lock"
                    )
                await anyio.sleep(0.002)
            try:
                yield
            finally:
                self.store.release()

    # -- decisions under the lock -------------------------------------------

    def plan(self, seen: TokenSet | None, force: bool) -> tuple[TokenSet, bool]:
        """``(tokens, must_refresh)``; raises when no usable token can exist.

        ``seen`` is the token the caller found due (or got a 401 with);
        ``force`` means the server rejected it, so "still valid" is no excuse.
        """
        now = self.clock()
        current = self._reconcile()
        if current is None:
            raise SessionExpired(
                "the session has ended; log in again"
                if self._ever_had_tokens
                else "not logged in: call login() first"
            )
        if (seen is None or current.access_token != seen.access_token) and not current.expired(now):
            return current, False  # someone else refreshed while we waited
        usable = not force and not current.expired(now)
        if not force and not current.due(now, self._margin):
            return current, False
        if now < self._cooldown_until:
            if usable:
                return current, False
            raise RefreshFailed(
                f"token refresh is cooling down for {self._cooldown_until - now:.1f} s "
                f"after: {self._last_error!r}"
            ) from self._last_error
        if current.refresh_token is None:
            if usable:
                return current, False
            self._expire("the access token expired and there is no refresh token")
        return self._keyed(current), True

    def _keyed(self, tokens: TokenSet) -> TokenSet:
        """``tokens`` with an Idempotency-Key for their refresh, stored before it is sent.

        Stored first so that a process killed while the request is in flight
        (and any other holder of the store) retries with the same key.
        """
        keyed = tokens.with_pending_key()
        if keyed is not tokens:
            # As after a refresh (_persist): a store that cannot be written keeps the key
            # in memory; retries in this process still carry it, a restart would not.
            self._persist(keyed)
            self._set(keyed)
        return keyed

    def _reconcile(self) -> TokenSet | None:
        """Merge what the store holds (maybe written by another process) with ours."""
        try:
            stored = self.store.load()
        except OSError as exc:
            raise RefreshFailed(f"cannot read the token store: {exc}") from exc
        current = self._tokens
        if stored is None:
            if current is not None:
                # Another holder found the session dead and cleared the store.
                self._expire("the session was ended by another client sharing the store")
            return None
        if (
            current is None
            or stored.refresh_token != current.refresh_token
            or stored.issued_at > current.issued_at
            # Another holder started this refresh: retry it with its key, not a new one.
            or (stored.pending_key and stored.pending_key != current.pending_key)
        ):
            self._set(stored)
            return stored
        return current

    def accept(self, response: httpx.Response, old: TokenSet, force: bool) -> TokenSet:
        """Digest the token endpoint's answer to our refresh."""
        now = self.clock()
        if 200 <= response.status_code < 300:
            try:
                new = TokenSet.from_response(response.json(), now, previous=old)
            except (ValueError, AttributeError) as exc:
                return self.failed(RefreshFailed(f"malformed token response: {exc}"), old, force)
            self._persist(new)
            self._set(new)
            self._failures, self._cooldown_until = 0, 0.0
            return new
        error = oauth_error(response.content)
        if response.status_code in (400, 401) and error in FATAL_ERRORS:
            self._expire(f"the token endpoint refused the refresh token ({error})")
        # No mutants here: header names are case-insensitive in httpx, and any
        # non-digit default reads as "no Retry-After".
        retry_after = response.headers.get("retry-after", "")  # pragma: no mutate
        return self.failed(
            RefreshFailed(f"token endpoint answered {response.status_code} {error or ''}".strip()),
            old,
            force,
            float(retry_after) if retry_after.isdigit() else 0.0,
        )

    def failed(
        self, error: BaseException, old: TokenSet, force: bool, retry_after: float = 0.0
    ) -> TokenSet:
        """A transient failure: cool down; carry on with ``old`` if it still works."""
        now = self.clock()
        self._failures += 1
        backoff = min(COOLDOWN_MAX, COOLDOWN_BASE * 2 ** (self._failures - 1))
        self._cooldown_until = now + max(retry_after, backoff * self._rng.uniform(0.8, 1.2))
        self._last_error = error
        log.warning("token refresh failed (%r); next attempt in %.1f s", error, self._cooldown_until - now)
        if not force and not old.expired(now):
            return old
        if isinstance(error, RefreshFailed):
            raise error
        raise RefreshFailed(f"token endpoint unreachable: {error!r}") from error

    def _persist(self, tokens: TokenSet) -> None:
        try:
            self.store.save(tokens)
        except OSError:
            # Keep the new grant in memory: losing it would lose the session.
            log.exception("could not persist the new tokens; keeping them in memory")

    def _expire(self, reason: str) -> None:
        """The session is dead: clear everything, arm the callback, raise."""
        with contextlib.suppress(OSError):
            self.store.clear()
        with self._state:
            self._tokens = None
            if self._callback_armed:
                self._callback_armed = False  # pragma: no mutate - None reads as False
                self._callback_pending = True
        raise SessionExpired(reason)

    def run_pending_callback(self) -> None:
        """Run ``on_session_expired`` at most once per session, outside any lock."""
        with self._state:
            pending, self._callback_pending = self._callback_pending, False
        if pending and self.on_session_expired is not None:
            try:
                self.on_session_expired()
            except Exception:
                log.exception("on_session_expired callback failed")
