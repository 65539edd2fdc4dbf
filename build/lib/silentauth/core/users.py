"""Local accounts: the rules for adding and removing one, in one place.

The command line, the demo seed and the storm simulator all go through
:class:`Users`, so a removed user's sessions are revoked through the session
service — the same events, the same in-process revocation set — as a log-out.
"""

from __future__ import annotations

import uuid

from silentauth.clock import Clock
from silentauth.core.passwords import Passwords, normalize_username
from silentauth.core.ports import Store, User
from silentauth.core.sessions import SessionService
from silentauth.errors import AlreadyExists, InvalidRequest


class Users:
    """Adds, lists and removes users; removal ends their sessions."""

    def __init__(self, *, store: Store, passwords: Passwords, clock: Clock, sessions: SessionService) -> None:
        self.store = store
        self.passwords = passwords
        self.clock = clock
        self.sessions = sessions

    async def add(self, username: str, password: str) -> User:
        """Create ``username`` (normalized); AlreadyExists if it is taken."""
        name = normalize_username(username)
        if not password:
            raise InvalidRequest("empty password refused")
        user = User(str(uuid.uuid4()), name, self.passwords.hash(password), self.clock())
        await self.store.add_user(user)
        return user

    async def ensure(self, username: str, password: str) -> None:
        """:meth:`add`, unless the user exists already (its password is kept)."""
        try:
            await self.add(username, password)
        except AlreadyExists:
            pass

    async def get(self, username: str) -> User | None:
        """The user called ``username`` (normalized), if any."""
        return await self.store.get_user(normalize_username(username))

    async def list(self) -> list[User]:
        """Every user, in the store's order."""
        return await self.store.list_users()

    async def set_password(self, username: str, password: str, *, keep_session: str | None = None) -> int | None:
        """Give ``username`` a new password and end its sessions but ``keep_session``.

        Whoever knew the old password may hold a session: a password change
        that left those alive would not lock them out. Returns how many
        sessions were revoked, ``None`` if there is no such user.
        """
        name = normalize_username(username)
        if not password:
            raise InvalidRequest("empty password refused")
        user = await self.store.get_user(name)
        if user is None or not await self.store.set_password(name, self.passwords.hash(password)):
            return None
        revoked = 0
        for s in await self.sessions.sessions(user.id):
            if s.id != keep_session and await self.sessions.revoke(s.id, "admin"):
                revoked += 1
        return revoked

    async def remove(self, username: str) -> bool:
        """Delete ``username`` and revoke its sessions; False if there was none."""
        name = normalize_username(username)
        user = await self.store.get_user(name)
        if user is None or not await self.store.remove_user(name):
            return False
        await self.sessions.revoke_user(user.id, "admin")
        return True
