"""The application's own users: a SQLAlchemy table, its own password hashing.

Nothing here belongs to silentauth: the table, the hashing (``hashlib.scrypt``)
and the roles are the application's. Two small adapters hand silentauth what
it needs: :meth:`UserTable.authenticate` (the identity protocol, for the
password grant) and :meth:`UserTable.claims` (the claims hook, asked at login
and at every refresh, so a role change shows at the next refresh).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from collections.abc import Mapping
from typing import Any

import anyio.to_thread
from sqlalchemy import String, create_engine, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from silentauth.core.hooks import TokenContext
from silentauth.core.identity import Identity, RequestInfo


class Base(DeclarativeBase):
    """The application's declarative base."""


class User(Base):
    """One account of the application."""

    __tablename__ = "app_users"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    email: Mapped[str] = mapped_column(String(200), unique=True)
    password_hash: Mapped[str] = mapped_column(String(300))
    roles: Mapped[str] = mapped_column(String(500), default="")


def hash_password(password: str, *, n: int = 2**14) -> str:
    """``scrypt$n$salt$hash``: the application's own scheme, not silentauth's."""
    salt = secrets.token_hex(16)
    digest = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), n=n, r=8, p=1).hex()
    return f"scrypt${n}${salt}${digest}"


def check_password(stored: str, password: str) -> bool:
    """Whether ``password`` matches ``stored`` (constant-time comparison)."""
    _, n, salt, digest = stored.split("$")
    given = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), n=int(n), r=8, p=1).hex()
    return hmac.compare_digest(given, digest)


class UserTable:
    """The user table, with blocking SQLAlchemy calls kept off the event loop."""

    def __init__(self, url: str, *, scrypt_n: int = 2**14) -> None:
        self.engine = create_engine(url)
        Base.metadata.create_all(self.engine)
        self.scrypt_n = scrypt_n
        # A hash to check against for unknown e-mails, so they cost the same time.
        self._dummy = hash_password("dummy", n=scrypt_n)

    def close(self) -> None:
        """Release the connection pool."""
        self.engine.dispose()

    # -- the application's own operations ---------------------------------------

    def _add(self, email: str, password: str, roles: list[str]) -> str:
        with Session(self.engine) as db, db.begin():
            user = User(
                id=str(uuid.uuid4()),
                email=email.lower(),
                password_hash=hash_password(password, n=self.scrypt_n),
                roles=" ".join(roles),
            )
            db.add(user)
            return user.id

    async def add(self, email: str, password: str, roles: list[str] | None = None) -> str:
        """Create a user; return its id."""
        return await anyio.to_thread.run_sync(self._add, email, password, roles or [])

    def _find(self, email: str) -> User | None:
        with Session(self.engine) as db:
            return db.scalars(select(User).where(User.email == email.lower())).first()

    async def find(self, email: str) -> User | None:
        """The user with this e-mail, if any."""
        return await anyio.to_thread.run_sync(self._find, email)

    def _verify(self, email: str, password: str) -> User | None:
        user = self._find(email)
        ok = check_password(user.password_hash if user else self._dummy, password)
        return user if user is not None and ok else None

    async def verify(self, email: str, password: str) -> User | None:
        """The user if the password is right."""
        return await anyio.to_thread.run_sync(self._verify, email, password)

    def _update(self, user_id: str, **values: Any) -> None:
        with Session(self.engine) as db, db.begin():
            user = db.get(User, user_id)
            if user is None:
                raise KeyError(user_id)
            for name, value in values.items():
                setattr(user, name, value)

    async def set_roles(self, user_id: str, roles: list[str]) -> None:
        """Replace the user's roles."""
        await anyio.to_thread.run_sync(lambda: self._update(user_id, roles=" ".join(roles)))

    async def set_password(self, user_id: str, password: str) -> None:
        """Store a new password hash."""
        digest = hash_password(password, n=self.scrypt_n)
        await anyio.to_thread.run_sync(lambda: self._update(user_id, password_hash=digest))

    def _roles(self, user_id: str) -> list[str]:
        with Session(self.engine) as db:
            user = db.get(User, user_id)
            return user.roles.split() if user is not None else []

    # -- what silentauth asks --------------------------------------------------

    async def authenticate(self, username: str, password: str, request: RequestInfo) -> Identity | None:
        """The identity protocol: the password grant and ``/auth/login`` come here."""
        user = await self.verify(username, password)
        return Identity(user.id, user.email) if user is not None else None

    async def claims(self, context: TokenContext) -> Mapping[str, Any]:
        """The claims hook: the roles as they are now, at login and every refresh."""
        return {"roles": await anyio.to_thread.run_sync(self._roles, context.user_id)}
