"""A third-party FastAPI API protected by silentauth access tokens (JWKS over HTTP).

Run: SILENTAUTH_ISSUER=http://127.0.0.1:8000 uvicorn examples.fastapi_app:app --port 9000
"""

import os
from typing import Annotated, Any

from fastapi import Depends, FastAPI

from silentauth.resource import BearerAuthMiddleware, Principal, TokenAuthenticator
from silentauth.resource.fastapi import (
    CurrentPrincipal,
    add_bearer_error_handler,
    require_scope,
)

Payer = Annotated[Principal, Depends(require_scope("payments"))]


def create_app(issuer: str, **options: Any) -> FastAPI:
    # Keys from {issuer}/.well-known/jwks.json; revoked sessions from the feed
    # {issuer}/auth/revocations, polled every second (revocation_url=False opts out).
    auth = TokenAuthenticator.from_issuer(issuer, **options)
    app = FastAPI(lifespan=auth.lifespan)  # prefetches keys, runs both pollers
    app.add_middleware(BearerAuthMiddleware, authenticator=auth)
    add_bearer_error_handler(app)  # BearerError -> RFC 6750 401/403 + WWW-Authenticate

    @app.get("/whoami")
    async def whoami(p: CurrentPrincipal) -> dict[str, str]:
        return {"sub": p.subject, "username": p.username}

    @app.post("/transfer")
    async def transfer(p: Payer) -> dict[str, str]:
        return {"status": "accepted", "by": p.subject}

    return app


app = create_app(os.environ.get("SILENTAUTH_ISSUER", "http://127.0.0.1:8000"))
