"""An application's own user directory and hooks, as a settings string names them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from silentauth.core.hooks import TokenContext
from silentauth.core.identity import Identity, RequestInfo


class Directory:
    """A user directory of the application's own: plain dicts, its own user ids."""

    def __init__(self) -> None:
        self.passwords = {"carol": "c-pass", "dave": "d-pass"}
        self.ids = {"carol": "u-100", "dave": "u-200"}
        self.roles: dict[str, list[str]] = {"u-100": ["admin", "staff"], "u-200": []}
        self.calls: list[tuple[str, RequestInfo]] = []
        self.failure: BaseException | None = None
        self.delay = 0.0

    async def authenticate(self, username: str, password: str, request: RequestInfo) -> Identity | None:
        """The directory's verdict on these credentials."""
        import anyio

        self.calls.append((username, request))
        if self.delay:
            await anyio.sleep(self.delay)
        if self.failure is not None:
            raise self.failure
        if self.passwords.get(username) != password:
            return None
        return Identity(self.ids[username], username)

    async def claims(self, context: TokenContext) -> Mapping[str, Any]:
        """The roles the user holds right now."""
        return {"roles": list(self.roles.get(context.user_id, []))}


directory = Directory()
