"""A third-party Flask API protected by silentauth access tokens (JWKS + revocation feed over HTTP).

Run: SILENTAUTH_ISSUER=http://127.0.0.1:8000 flask --app examples.flask_app run --port 9001
"""

import os
from typing import Any

from flask import Flask

from silentauth.resource.flask import SilentAuth, current_principal


def create_app(issuer: str, **options: Any) -> Flask:
    app = Flask(__name__)
    # Keys from {issuer}/.well-known/jwks.json, revocations from {issuer}/auth/revocations,
    # followed by a background thread started on the first request.
    auth = SilentAuth(app, issuer=issuer, **options)

    @app.get("/whoami")
    @auth.required()
    def whoami() -> dict[str, str]:
        p = current_principal()
        return {"sub": p.subject, "username": p.username}

    @app.post("/transfer")
    @auth.required("payments")
    def transfer() -> dict[str, str]:
        return {"status": "accepted", "by": current_principal().subject}

    return app


app = create_app(os.environ.get("SILENTAUTH_ISSUER", "http://127.0.0.1:8000"))
