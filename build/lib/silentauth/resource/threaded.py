"""The resource kit for synchronous (WSGI) frameworks: Django/DRF and Flask.

WSGI apps have no event loop and no lifespan, yet they must verify exactly as
the Starlette kit does. So they use the same :class:`RemoteAuthenticator` —
one verifier, one claims cache, one JWKS source, one revocation follower — and
this module only gives it a home: a daemon thread running an event loop that
prefetches the keys and follows the JWKS and the revocation feed
(:meth:`RemoteAuthenticator.running`). Request threads call the synchronous
:meth:`TokenAuthenticator.authenticate` (dict look-ups, no I/O); only a token
with an unknown ``kid`` waits for the loop to learn the key (rate limited, as
in the Starlette kit), then retries once.

The thread starts on the first request (or :meth:`ThreadedAuthenticator.start`),
so importing a WSGI app starts nothing and each worker a pre-forking server
(gunicorn, uWSGI) forks gets a thread of its own — a thread started before the
fork would not exist in the children. It is a daemon, so it never keeps a
worker process alive.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from silentauth.errors import UnknownKeyId
from silentauth.resource.remote import RemoteAuthenticator
from silentauth.resource.verify import Principal, TokenAuthenticator


class ThreadedAuthenticator:
    """A :class:`RemoteAuthenticator` kept fresh by a background thread.

    ``ThreadedAuthenticator.from_issuer(issuer, audience=..., **options)`` takes the
    options of :meth:`TokenAuthenticator.from_issuer` (revocation is followed by
    default). ``learn_timeout`` bounds how long a request waits for a key fetch.
    """

    def __init__(self, auth: RemoteAuthenticator, learn_timeout: float = 5.0) -> None:
        self.auth = auth
        self.learn_timeout = learn_timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._stopped: asyncio.Event | None = None

    @classmethod
    def from_issuer(cls, issuer: str, audience: str = "silentauth", **options: Any) -> ThreadedAuthenticator:
        """Keys (and revocations) from ``issuer``, as :meth:`TokenAuthenticator.from_issuer`."""
        return cls(TokenAuthenticator.from_issuer(issuer, audience, **options))

    def start(self, timeout: float = 10.0) -> None:
        """Start the thread and wait (up to ``timeout``) for the first key and feed fetch."""
        with self._lock:
            if self._thread is not None:
                return
            ready = threading.Event()
            self._thread = threading.Thread(target=self._run, args=(ready,), name="silentauth-feeds", daemon=True)
            self._thread.start()
        ready.wait(timeout)

    def _run(self, ready: threading.Event) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stopped = asyncio.Event()
            try:
                async with self.auth.running():
                    ready.set()
                    await self._stopped.wait()
            finally:
                ready.set()  # never leave start() waiting, even if the prefetch failed hard

        asyncio.run(main())

    def stop(self) -> None:
        """Stop following the issuer and close the HTTP clients (tests, shutdown)."""
        loop, stopped, thread = self._loop, self._stopped, self._thread
        if loop is not None and stopped is not None:
            loop.call_soon_threadsafe(stopped.set)
        if thread is not None:
            thread.join(timeout=10)
        with self._lock:
            self._thread = self._loop = self._stopped = None

    def authenticate(self, header: str | None) -> Principal:
        """The principal of an ``Authorization`` header value, or a BearerError."""
        if self._thread is None:
            self.start()
        try:
            return self.auth.authenticate(header)
        except UnknownKeyId as exc:
            loop = self._loop
            if loop is None:
                raise
            learning = asyncio.run_coroutine_threadsafe(self.auth.learn_key(exc.kid), loop)
            try:
                learned = learning.result(self.learn_timeout)
            except (TimeoutError, asyncio.CancelledError):
                learned = False
            if not learned:
                raise
        return self.auth.authenticate(header)
