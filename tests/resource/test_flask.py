"""``silentauth.resource.flask`` (examples/flask_app.py) against a live token service.

The Flask app verifies from the service's JWKS over HTTP and follows its
revocation feed, through the same RemoteAuthenticator as the Starlette kit;
its refusals come from the same renderer (``silentauth.errors.render_error``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import httpx
import pytest
from flask.testing import FlaskClient

from examples.flask_app import create_app
from silentauth.resource.flask import SilentAuth
from tests.conftest import LiveServer

ISSUER = "https://issuer.test"
Factory = Callable[..., LiveServer]


@pytest.fixture
def live(live_server_factory: Factory) -> LiveServer:
    return live_server_factory(issuer=ISSUER, scope="profile api payments", access_ttl=900)


@pytest.fixture
def flask_client(live: LiveServer) -> Iterator[FlaskClient]:
    # No refetch rate limit, so the rotation test need not wait 10 s (the limit is tested elsewhere).
    app = create_app(ISSUER, jwks_url=f"{live.url}/.well-known/jwks.json", revocation_poll=0.5, refetch_interval=0.0)
    ext: SilentAuth = app.extensions["silentauth"]
    try:
        yield app.test_client()
    finally:
        ext.authenticator.stop()


def login(live: LiveServer, **extra: str) -> dict[str, str]:
    r = httpx.post(
        f"{live.url}/auth/token",
        data={"grant_type": "password", "username": "alice", "password": "secret", **extra},
    )
    assert r.status_code == 200, r.text
    return dict(r.json())


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_valid_token_passes_and_keys_are_fetched_once(live: LiveServer, flask_client: FlaskClient) -> None:
    token = login(live)["access_token"]
    for _ in range(10):
        r = flask_client.get("/whoami", headers=bearer(token))
        assert r.status_code == 200 and r.json == {"sub": r.json["sub"], "username": "alice"}
    ext: SilentAuth = flask_client.application.extensions["silentauth"]
    assert ext.authenticator.auth.jwks.fetches == 1


def test_refusals_follow_rfc_6750_and_9470(live: LiveServer, flask_client: FlaskClient) -> None:
    token = login(live, scope="api")["access_token"]
    r = flask_client.get("/whoami")
    assert r.status_code == 401 and r.headers["WWW-Authenticate"] == "Bearer"
    r = flask_client.get("/whoami", headers=bearer(token + "x"))
    assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith('Bearer error="invalid_token"')
    r = flask_client.get("/whoami", headers={"Authorization": "Bearer"})
    assert r.status_code == 400 and r.json is not None and r.json["error"] == "invalid_request"
    r = flask_client.post("/transfer", headers=bearer(token))
    assert r.status_code == 403
    assert r.headers["WWW-Authenticate"] == 'Bearer error="insufficient_scope", scope="payments"'
    assert r.headers["Cache-Control"] == "no-store" and r.headers["Content-Type"] == "application/json"
    paying = login(live, scope="api payments")["access_token"]
    assert flask_client.post("/transfer", headers=bearer(paying)).status_code == 200


def test_step_up_answers_insufficient_user_authentication(live: LiveServer) -> None:
    from flask import Flask

    app = Flask("stepup")
    auth = SilentAuth(app, issuer=ISSUER, jwks_url=f"{live.url}/.well-known/jwks.json", clock=lambda: time.time() + 600)

    @app.get("/pay")
    @auth.required(max_age=300)
    def pay() -> dict[str, bool]:
        return {"ok": True}

    try:
        # scope "api": the payments scope would bring a 300 s lifetime, shorter than the 600 s jump.
        r = app.test_client().get("/pay", headers=bearer(login(live, scope="api")["access_token"]))
    finally:
        auth.authenticator.stop()
    assert r.status_code == 401 and r.json is not None and r.json.get("max_age") == 300, r.json
    assert 'error="insufficient_user_authentication"' in r.headers["WWW-Authenticate"]
    assert "max_age=300" in r.headers["WWW-Authenticate"]


def test_revoked_session_is_refused_within_two_seconds(live: LiveServer, flask_client: FlaskClient) -> None:
    token = login(live)["access_token"]
    assert flask_client.get("/whoami", headers=bearer(token)).status_code == 200
    assert httpx.post(f"{live.url}/auth/logout", headers=bearer(token)).status_code == 204
    started = time.monotonic()
    while flask_client.get("/whoami", headers=bearer(token)).status_code == 200:
        assert time.monotonic() - started < 2.0, "Flask app accepted a revoked session's token for 2 s"
        time.sleep(0.05)
    r = flask_client.get("/whoami", headers=bearer(token))
    assert r.status_code == 401 and "revoked" in r.json["error_description"]  # type: ignore[index]


def test_a_rotated_key_is_learned_once_by_the_background_loop(live: LiveServer, flask_client: FlaskClient) -> None:
    first = login(live)["access_token"]
    assert flask_client.get("/whoami", headers=bearer(first)).status_code == 200
    live.run(live.runtime.keys.rotate(live.runtime.clock(), starts=live.runtime.clock()))
    live.run(live.runtime.reload_keys())
    second = login(live)["access_token"]
    assert second.split(".")[0] != first.split(".")[0]  # another kid in the header
    assert flask_client.get("/whoami", headers=bearer(second)).status_code == 200
    ext: SilentAuth = flask_client.application.extensions["silentauth"]
    assert ext.authenticator.auth.jwks.fetches == 2
