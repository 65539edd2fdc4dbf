"""Flask with the :class:`SilentAuth` extension's ``required()`` decorator.

Serve with ``granian --interface wsgi bench.protected.flask_app:app``.
"""

from __future__ import annotations

from typing import Any

from flask import Flask

from bench.protected import PAYLOAD, issuer
from silentauth.resource.flask import SilentAuth

app = Flask(__name__)
auth = SilentAuth(app, issuer=issuer())


@app.get("/open")
def open_route() -> dict[str, Any]:
    return PAYLOAD


@app.get("/protected")
@auth.required()
def protected() -> dict[str, Any]:
    return PAYLOAD
