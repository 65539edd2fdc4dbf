"""The silentauth Python client: no 401 ever reaches application code.

::

    auth = TokenAuth(token_url="http://127.0.0.1:8000/auth/token",
                     store=FileTokenStore("~/.config/app/tokens.json"))
    auth.login("alice", "secret")
    httpx.Client(auth=auth).get("http://127.0.0.1:8000/api/me")

Depends only on httpx, anyio and filelock (requests is optional), and never on
the server side of silentauth.
"""

from __future__ import annotations

from silentauth.client.auth import TokenAuth
from silentauth.client.stores import FileTokenStore, MemoryTokenStore, TokenStore
from silentauth.client.token_set import TokenSet
from silentauth.errors import (
    BodyNotReplayable,
    ClientError,
    LoginFailed,
    RefreshFailed,
    SessionExpired,
    StepUpRequired,
)

__all__ = [
    "BodyNotReplayable",
    "ClientError",
    "FileTokenStore",
    "LoginFailed",
    "MemoryTokenStore",
    "RefreshFailed",
    "SessionExpired",
    "StepUpRequired",
    "TokenAuth",
    "TokenSet",
    "TokenStore",
]
