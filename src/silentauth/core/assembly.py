"""The core wired to one store: keys, revocation set, refresh tokens, sessions, users, clients.

The token service (:class:`~silentauth.server.runtime.Runtime` adds HTTP-side
parts to this), the command line and the storm simulator all build the same
graph here, so none of them has to reach into the server to get a service.
"""

from __future__ import annotations

import random

from silentauth.clock import Clock
from silentauth.core.clients import ClientRegistry
from silentauth.core.devices import KnownDevices
from silentauth.core.events import SessionEvents
from silentauth.core.hooks import ClaimsHook, LifetimeHook, TokenHooks, as_hook
from silentauth.core.identity import (
    GuardedIdentity,
    IdentityProvider,
    LocalUsers,
    as_identity_provider,
)
from silentauth.core.keys import KeyManager, KeyRing, MasterKey
from silentauth.core.passwords import Passwords
from silentauth.core.plugins import load_object
from silentauth.core.policy import LifetimePolicy
from silentauth.core.ports import Store
from silentauth.core.refresh import RefreshTokens
from silentauth.core.revoked import RevocationSet
from silentauth.core.sessions import SessionService
from silentauth.core.users import Users
from silentauth.settings import Settings


class TokenCore:
    """Everything the token service decides, over one (not yet opened) store.

    :meth:`start` loads the key ring and the revocation set; the caller opens
    and closes the store.
    """

    def __init__(
        self,
        *,
        settings: Settings,
        store: Store,
        clock: Clock,
        passwords: Passwords,
        rng: random.Random | None = None,
        events: SessionEvents | None = None,
        identity: IdentityProvider | None = None,
        claims: ClaimsHook | None = None,
        lifetimes: LifetimeHook | None = None,
    ) -> None:
        s = settings
        self.settings = settings
        self.store = store
        self.clock = clock
        self.passwords = passwords
        self.master = MasterKey.from_settings(s.secret_key, s.secret_key_file, s.database_url)
        # Keys verify as long as any token they signed may live.
        self.keys = KeyManager(
            store, self.master, s.key_lifetime, verify_grace=s.access_ttl + 60, prepublish=s.key_prepublish
        )
        # Empty until start() loads the real ring; nothing reads it before (no mutate).
        self.ring = KeyRing([], s.access_ttl + 60)  # pragma: no mutate
        self.revocations = RevocationSet(store, poll=s.revocation_poll)
        self.refresh_tokens = RefreshTokens(self.master)
        if identity is None and s.identity:
            identity = as_identity_provider(load_object("IDENTITY", s.identity))
        if claims is None and s.claims_hook:
            claims = as_hook("CLAIMS_HOOK", load_object("CLAIMS_HOOK", s.claims_hook))
        if lifetimes is None and s.lifetime_hook:
            lifetimes = as_hook("LIFETIME_HOOK", load_object("LIFETIME_HOOK", s.lifetime_hook))
        builtin = identity is None
        provider = as_identity_provider(identity) if identity is not None else LocalUsers(store, passwords)
        self.identity = GuardedIdentity(provider, timeout=s.identity_timeout, builtin=builtin)
        self.hooks = TokenHooks(claims, lifetimes, max_bytes=s.claims_max_bytes, timeout=s.identity_timeout)
        self.service = SessionService(
            settings=s,
            store=store,
            keyring=lambda: self.ring,
            refresh_tokens=self.refresh_tokens,
            # Read only to build an identity when none is given, and one always is.
            passwords=passwords,  # pragma: no mutate
            revocations=self.revocations,
            clock=clock,
            policy=LifetimePolicy(s, rng),
            events=events,
            devices=KnownDevices(self.master, s.known_device_ttl),
            identity=self.identity,
            hooks=self.hooks,
        )
        self.clients = ClientRegistry(store, clock)
        self.users = Users(store=store, passwords=passwords, clock=clock, sessions=self.service)

    async def start(self) -> None:
        """Load the key ring (making a first key if none signs) and the revocation set."""
        await self.reload_keys()
        await self.revocations.sync()

    async def reload_keys(self) -> None:
        """Re-read the keys from the store: another instance may have rotated."""
        self.ring = await self.keys.load(self.clock())
