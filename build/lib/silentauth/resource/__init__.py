"""Verify silentauth access tokens in any Starlette or FastAPI application.

In the token service the keys come from the local ring; elsewhere use
:meth:`TokenAuthenticator.from_issuer`, which fetches the issuer's JWKS. FastAPI
dependencies live in :mod:`silentauth.resource.fastapi` (FastAPI is optional).
"""

from __future__ import annotations

from silentauth.errors import UnknownKeyId
from silentauth.resource.backend import SilentAuthBackend
from silentauth.resource.jwks import JWKSKeySource
from silentauth.resource.middleware import (
    BearerAuthMiddleware,
    PrincipalUser,
    require_auth,
)
from silentauth.resource.remote import RemoteAuthenticator
from silentauth.resource.responses import error_response
from silentauth.resource.revocations import RevocationFollower
from silentauth.resource.verify import Principal, TokenAuthenticator

__all__ = [
    "BearerAuthMiddleware",
    "JWKSKeySource",
    "Principal",
    "PrincipalUser",
    "RemoteAuthenticator",
    "RevocationFollower",
    "SilentAuthBackend",
    "TokenAuthenticator",
    "UnknownKeyId",
    "error_response",
    "require_auth",
]
