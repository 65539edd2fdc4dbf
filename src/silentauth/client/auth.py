"""``TokenAuth``: one auth object for httpx (sync and async) and requests.

Per request to an allowed origin (see :mod:`silentauth.client.origins`):
take the current access token (lock-free when it is not due), send, adopt a
``New-Access-Token``, and on a 401 ``invalid_token`` refresh once
(single-flight, see :mod:`silentauth.client.coordination`) and replay the
request once, body included. A request to any other origin goes out as the
user built it, and nothing in its response (renewal, 401, step-up) is acted
on. No lock is ever held while the user's own request is in flight; only a
refresh runs under the lock.
"""

from __future__ import annotations

import itertools
import logging
import os
import ssl
from collections.abc import AsyncGenerator, Callable, Generator, Iterable, Sequence
from typing import Any, TypeVar

import anyio
import httpx

from silentauth.client.background import BackgroundRefresh
from silentauth.client.challenges import parse_challenge
from silentauth.client.coordination import Coordinator
from silentauth.client.endpoint import LOST_ANSWER_DELAYS, TokenEndpointClient
from silentauth.client.origins import OriginPolicy, format_origin, origin_of
from silentauth.client.requests_support import RequestsAuthMixin
from silentauth.client.stores import MemoryTokenStore, TokenStore
from silentauth.client.token_set import TokenSet
from silentauth.clock import Clock, system_clock
from silentauth.errors import StepUpRequired

RENEWAL_HEADER = "new-access-token"
T = TypeVar("T")
log = logging.getLogger("silentauth.client")


class TokenAuth(RequestsAuthMixin, httpx.Auth):
    """Keeps a session alive for ``httpx.Client``, ``httpx.AsyncClient`` and requests.

    Args:
        token_url: the RFC 6749 token endpoint. Its origin (scheme, host,
            port) is the issuer's: requests there carry the access token.
        allowed_origins: further origins (``"https://api.example.com"``) whose
            requests carry the token and whose ``New-Access-Token`` is adopted.
            A request to any other origin is sent without the token, never
            triggers a refresh or retry, and a renewal it returns is ignored
            (with a warning on the ``silentauth.client`` logger).
        store: where tokens live; :class:`FileTokenStore` shares them (and the
            refresh) between processes. Defaults to a :class:`MemoryTokenStore`.
        refresh_margin: refresh this many seconds before expiry (plus up to
            ``jitter`` of it at random; never more than half the lifetime).
        on_session_expired: called once when the session cannot be renewed.
        client_id, client_secret: optional client authentication (HTTP Basic
            with a secret, ``client_id`` in the form without).
        resource: the API (or APIs) the access tokens are for (RFC 8707
            resource indicators, e.g. ``"https://billing.example"``): sent with
            the login and every refresh, so the token's ``aud`` names exactly
            them. The server must list them in ``RESOURCES``; an unknown one
            fails the login with ``LoginFailed`` (``error == "invalid_target"``).
        clock: epoch seconds; injectable for tests.
        timeout: seconds for each token-endpoint request.
        transport, async_transport: transports for token-endpoint requests
            (default: fresh httpx transports with ``verify``).
        device_token: a known-device token from an earlier login (see
            :attr:`device_token`): sent with the password grant, it keeps this
            device's logins under its own rate limit while someone guesses the
            account's password from the same address.
    """

    requires_request_body = True

    def __init__(
        self,
        token_url: str,
        *,
        allowed_origins: Iterable[str] = (),
        store: TokenStore | None = None,
        refresh_margin: float = 60.0,
        on_session_expired: Callable[[], object] | None = None,
        client_id: str | None = None,
        client_secret: str | None = None,
        resource: str | Sequence[str] | None = None,
        clock: Clock = system_clock,
        jitter: float = 0.1,
        timeout: float = 10.0,
        verify: ssl.SSLContext | str | bool = True,
        transport: httpx.BaseTransport | None = None,
        async_transport: httpx.AsyncBaseTransport | None = None,
        device_token: str | None = None,
    ) -> None:
        if refresh_margin < 0 or not 0 <= jitter <= 1:
            raise ValueError("refresh_margin must be >= 0 and jitter within [0, 1]")
        self.origins = OriginPolicy(token_url, allowed_origins)
        self._foreign_renewals = itertools.count(1)
        self.endpoint = TokenEndpointClient(
            token_url,
            client_id=client_id,
            client_secret=client_secret,
            resources=_resources(resource),
            timeout=timeout,
            verify=verify,
            transport=transport,
            async_transport=async_transport,
        )
        self.store: TokenStore = store if store is not None else MemoryTokenStore()
        # The server's proof that this device logged in before; kept across logouts.
        # It grants no access, only this device's own login allowance: persist it
        # yourself (pass it back as ``device_token=``) to keep it across runs.
        self.device_token = device_token
        self.clock = clock
        # Waiting for a refresh must outlast the refresh itself (with its retries of
        # a lost answer), never forever.
        attempts = len(LOST_ANSWER_DELAYS) + 1
        wait = attempts * timeout + sum(LOST_ANSWER_DELAYS) + timeout + 5
        self._coord = Coordinator(self.store, clock, refresh_margin, jitter, wait, on_session_expired)
        self._blocking_store = not isinstance(self.store, MemoryTokenStore)
        self._pid = os.getpid()
        self._background: BackgroundRefresh | None = None

    # -- public helpers ------------------------------------------------------

    @property
    def tokens(self) -> TokenSet | None:
        """The grant in use right now (``None`` before login / after expiry)."""
        return self._coord.tokens

    def login(self, username: str, password: str, scope: str | None = None) -> TokenSet:
        """Password grant (RFC 6749 §4.3); stores the tokens. Raises ``LoginFailed``."""
        self._check_fork()
        response = self.endpoint.send(self.endpoint.password_request(username, password, scope, self.device_token))
        tokens = self.endpoint.login_result(response, self.clock())
        self.device_token = self.endpoint.device_token_of(response) or self.device_token
        with self._coord.locked():
            self._coord.install(tokens)
        return tokens

    async def alogin(self, username: str, password: str, scope: str | None = None) -> TokenSet:
        """:meth:`login` for asyncio/trio code."""
        self._check_fork()
        response = await self.endpoint.asend(
            self.endpoint.password_request(username, password, scope, self.device_token)
        )
        tokens = self.endpoint.login_result(response, self.clock())
        self.device_token = self.endpoint.device_token_of(response) or self.device_token
        async with self._coord.alocked():
            await self._io(self._coord.install, tokens)
        return tokens

    def logout(self) -> None:
        """Forget the tokens locally (the store is cleared)."""
        with self._coord.locked():
            self._coord.forget()

    def close(self) -> None:
        """Stop background refresh and close the token-endpoint connections."""
        self.stop_background_refresh()
        self.endpoint.close()

    def start_background_refresh(self, interval: float = 30.0) -> None:
        """Refresh shortly before expiry even when no request is made.

        A daemon thread wakes when the token becomes due (at least every
        ``interval`` seconds) and stops by itself once the session expires.
        """
        self._check_fork()
        if self._background is None or not self._background.alive:
            self._background = BackgroundRefresh(self._coord, self.ensure_fresh, interval)
            self._background.start()

    def stop_background_refresh(self, timeout: float = 5.0) -> None:
        """Stop the background thread (waits up to ``timeout`` seconds)."""
        if self._background is not None:
            self._background.stop(timeout)
            self._background = None

    def ensure_fresh(self) -> TokenSet:
        """The current tokens, refreshed first if due (blocking)."""
        return self._obtain(None, force=False)

    async def aensure_fresh(self) -> TokenSet:
        """The current tokens, refreshed first if due (async)."""
        return await self._aobtain(None, force=False)

    # -- httpx ---------------------------------------------------------------

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        self._check_fork()
        if not self.origins.allows(request.url):
            response = yield request  # as the user built it: no token of ours
            self._inspect(response.status_code, response.headers, None, _origin(response, request))
            return
        request.read()  # buffered, so a replay after a 401 sends the same body
        tokens = self._obtain(None, force=False)
        self._authorize(request, tokens)
        response = yield request
        if not self._inspect(response.status_code, response.headers, tokens, _origin(response, request)):
            return
        tokens = self._obtain(tokens, force=True)
        self._authorize(request, tokens)
        response = yield request
        # Never a third try.
        self._inspect(response.status_code, response.headers, tokens, _origin(response, request))

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        self._check_fork()
        if not self.origins.allows(request.url):
            response = yield request
            self._inspect(response.status_code, response.headers, None, _origin(response, request))
            return
        await request.aread()
        tokens = await self._aobtain(None, force=False)
        self._authorize(request, tokens)
        response = yield request
        if not self._inspect(response.status_code, response.headers, tokens, _origin(response, request)):
            return
        tokens = await self._aobtain(tokens, force=True)
        self._authorize(request, tokens)
        response = yield request
        self._inspect(response.status_code, response.headers, tokens, _origin(response, request))

    # -- shared by every transport -------------------------------------------

    @staticmethod
    def _authorize(request: httpx.Request, tokens: TokenSet) -> None:
        request.headers["Authorization"] = f"Bearer {tokens.access_token}"

    def _inspect(self, status: int, headers: Any, sent: TokenSet | None, url: httpx.URL | str) -> bool:
        """Adopt a renewal; raise on step-up; True if a refresh + replay is due.

        ``url`` is where the response came from, which after a redirect is not
        where the request went; ``sent`` is ``None`` when no token was sent.
        Only an allowed origin's answer is acted on at all.
        """
        renewed = headers.get(RENEWAL_HEADER)
        if not self.origins.allows(url):
            if renewed:
                # A foreign host must not choose the identity this client acts as.
                log.warning(
                    "ignored a New-Access-Token from %s: not the issuer's origin and not in "
                    "allowed_origins (%d ignored so far)",
                    format_origin(origin_of(url)),
                    next(self._foreign_renewals),
                )
            return False
        if sent is None:
            return False
        if renewed:
            self._coord.adopt(sent.access_token, renewed.strip())
        if status != 401:
            return False
        challenge = parse_challenge(headers.get("www-authenticate"))
        if challenge is None:
            return False
        if challenge.error == "insufficient_user_authentication":
            raise StepUpRequired(challenge.max_age)
        return challenge.error in (None, "invalid_token")

    def _obtain(self, seen: TokenSet | None, force: bool) -> TokenSet:
        """A usable token for a thread, refreshing (once, for everyone) if needed."""
        coord = self._coord
        if not force:
            fresh = coord.fresh()
            if fresh is not None:
                return fresh
            seen = coord.tokens
        try:
            with coord.locked():
                tokens, must_refresh = coord.plan(seen, force)
                if not must_refresh:
                    return tokens
                try:
                    response = self.endpoint.send_refresh(tokens)
                except httpx.TransportError as exc:
                    return coord.failed(exc, tokens, force)
                return coord.accept(response, tokens, force)
        finally:
            coord.run_pending_callback()

    async def _aobtain(self, seen: TokenSet | None, force: bool) -> TokenSet:
        """:meth:`_obtain` for tasks: same decisions, no blocking of the loop."""
        coord = self._coord
        if not force:
            fresh = coord.fresh()
            if fresh is not None:
                return fresh
            seen = coord.tokens
        try:
            async with coord.alocked():
                tokens, must_refresh = await self._io(coord.plan, seen, force)
                if not must_refresh:
                    return tokens
                try:
                    response = await self.endpoint.asend_refresh(tokens)
                except httpx.TransportError as exc:
                    return await self._io(coord.failed, exc, tokens, force)
                return await self._io(coord.accept, response, tokens, force)
        finally:
            coord.run_pending_callback()

    async def _io(self, func: Callable[..., T], *args: Any) -> T:
        # A file store reads, writes and fsyncs: keep that off the event loop.
        if self._blocking_store:
            return await anyio.to_thread.run_sync(func, *args)
        return func(*args)

    def _check_fork(self) -> None:
        if os.getpid() != self._pid:
            self._pid = os.getpid()
            self._coord.after_fork()
            self.endpoint.after_fork()
            self._background = None  # threads do not survive fork()


def _resources(resource: str | Sequence[str] | None) -> tuple[str, ...]:
    """``resource=`` as a tuple of URIs; a bare string is one URI, not its characters."""
    names = (resource,) if isinstance(resource, str) else tuple(resource or ())
    if not all(isinstance(n, str) and n and n.split() == [n] for n in names):
        raise ValueError("resource must be a URI or a sequence of URIs (no spaces)")
    return names


def _origin(response: httpx.Response, request: httpx.Request) -> httpx.URL:
    """The URL that answered: the last hop when httpx followed redirects."""
    try:
        return response.request.url
    except RuntimeError:  # a response built by hand carries no request
        return request.url
