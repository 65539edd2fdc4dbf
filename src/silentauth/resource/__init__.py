"""Verify silentauth access tokens in any Starlette or FastAPI application."""

from __future__ import annotations

from silentauth.resource.middleware import BearerAuthMiddleware, Principal, require_auth
from silentauth.resource.verify import TokenAuthenticator

__all__ = ["BearerAuthMiddleware", "Principal", "TokenAuthenticator", "require_auth"]
