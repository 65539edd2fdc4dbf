"""``silentauth.resource.drf`` (examples/django_app.py) against a live token service.

Django's test client drives the one-file DRF app; the app verifies from the
service's JWKS over HTTP and follows its revocation feed through the same
RemoteAuthenticator as the Starlette kit, and answers with the same bytes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from examples import django_app
from silentauth.errors import InsufficientScope, render_error
from silentauth.resource import drf
from tests.conftest import LiveServer

django_test = pytest.importorskip("django.test")

ISSUER = "https://issuer.test"
Factory = Callable[..., LiveServer]


@pytest.fixture
def live(live_server_factory: Factory) -> LiveServer:
    return live_server_factory(issuer=ISSUER, scope="profile api payments", access_ttl=900)


@pytest.fixture
def client(live: LiveServer) -> Iterator[django_test.Client]:
    django_app.configure(ISSUER, jwks_url=f"{live.url}/.well-known/jwks.json", revocation_poll=0.5)
    try:
        yield django_test.Client()
    finally:
        drf.reset()


def login(live: LiveServer, **extra: str) -> str:
    r = httpx.post(
        f"{live.url}/auth/token",
        data={"grant_type": "password", "username": "alice", "password": "secret", **extra},
    )
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


def test_valid_token_passes_with_one_jwks_fetch(live: LiveServer, client: django_test.Client) -> None:
    token = login(live)
    for _ in range(10):
        r = client.get("/whoami", HTTP_AUTHORIZATION=f"Bearer {token}")
        assert r.status_code == 200 and r.json()["username"] == "alice"
    assert drf.authenticator().auth.jwks.fetches == 1


def test_refusals_are_the_starlette_kits_bytes(live: LiveServer, client: django_test.Client) -> None:
    r = client.get("/whoami")
    assert r.status_code == 401 and r["WWW-Authenticate"] == "Bearer" and r["Cache-Control"] == "no-store"
    assert r.json()["error"] == "unauthorized"
    r = client.get("/whoami", HTTP_AUTHORIZATION="Bearer " + login(live) + "x")
    assert r.status_code == 401 and r["WWW-Authenticate"].startswith('Bearer error="invalid_token"')
    r = client.get("/whoami", HTTP_AUTHORIZATION="Bearer ")
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"
    r = client.post("/transfer", HTTP_AUTHORIZATION=f"Bearer {login(live, scope='api')}")
    expected = render_error(InsufficientScope("payments"))
    assert r.status_code == 403 == expected.status and r.content == expected.body
    assert r["WWW-Authenticate"] == 'Bearer error="insufficient_scope", scope="payments"'
    assert client.post("/transfer", HTTP_AUTHORIZATION=f"Bearer {login(live, scope='api payments')}").status_code == 200


def test_step_up_permission_answers_rfc_9470(live: LiveServer, client: django_test.Client) -> None:
    from rest_framework.test import APIRequestFactory
    from rest_framework.views import APIView

    class Recent(APIView):
        permission_classes = [drf.require(max_age=0)]

        def get(self, request: object) -> object:
            raise AssertionError("a login older than 0 s must not get here")

    token = login(live, scope="api")
    time.sleep(1.1)  # auth_time is whole seconds: be sure the login is older than max_age=0
    request = APIRequestFactory().get("/recent", HTTP_AUTHORIZATION=f"Bearer {token}")
    r = Recent.as_view()(request)
    assert r.status_code == 401
    assert 'error="insufficient_user_authentication"' in r["WWW-Authenticate"] and "max_age=0" in r["WWW-Authenticate"]


def test_revoked_session_is_refused_within_two_seconds(live: LiveServer, client: django_test.Client) -> None:
    token = login(live)
    assert client.get("/whoami", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200
    assert httpx.post(f"{live.url}/auth/logout", headers={"Authorization": f"Bearer {token}"}).status_code == 204
    started = time.monotonic()
    while client.get("/whoami", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200:
        assert time.monotonic() - started < 2.0, "DRF app accepted a revoked session's token for 2 s"
        time.sleep(0.05)
    assert "revoked" in client.get("/whoami", HTTP_AUTHORIZATION=f"Bearer {token}").json()["error_description"]
