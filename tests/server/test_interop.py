"""Independent OAuth 2 client libraries against the token service on loopback."""

from __future__ import annotations

import httpx
import pytest
from authlib.integrations.requests_client import OAuth2Session
from oauthlib.oauth2 import LegacyApplicationClient
from requests_oauthlib import OAuth2Session as RequestsOAuth2Session

from silentauth.clock import FakeClock
from tests.conftest import LiveServer


def test_authlib_password_grant_refresh_and_reuse_detection(live_server_factory: object) -> None:
    clock = FakeClock()
    import time

    clock.set(time.time())
    live: LiveServer = live_server_factory(clock=clock)  # type: ignore[operator]
    token_url = f"{live.url}/auth/token"
    live.run(live.runtime.clients.register("authlib-test", confidential=False))
    session = OAuth2Session(client_id="authlib-test", token_endpoint_auth_method="none")
    token = session.fetch_token(token_url, username="alice", password="secret", grant_type="password")
    first_refresh = token["refresh_token"]
    me = session.get(f"{live.url}/api/me")
    assert me.status_code == 200 and me.json()["username"] == "alice"

    new = session.refresh_token(token_url, refresh_token=first_refresh)
    assert new["refresh_token"] != first_refresh
    assert session.get(f"{live.url}/api/me").status_code == 200

    clock.advance(11)  # past the grace window: the old token is now evidence of theft
    with pytest.raises(Exception, match="invalid_grant"):
        session.refresh_token(token_url, refresh_token=first_refresh)
    assert live.metric("silentauth_refresh_total", outcome="reuse_detected") == 1
    assert session.get(f"{live.url}/api/me").status_code == 401  # whole session revoked


def test_requests_oauthlib_legacy_password_flow(
    live_server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # oauthlib insists on https; the loopback test server speaks plain http.
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    token_url = f"{live_server.url}/auth/token"
    live_server.run(live_server.runtime.clients.register("ro-test", confidential=False))
    oauth = RequestsOAuth2Session(client=LegacyApplicationClient(client_id="ro-test"))
    token = oauth.fetch_token(token_url, username="alice", password="secret", include_client_id=True)
    assert oauth.get(f"{live_server.url}/api/me").json()["username"] == "alice"
    refreshed = oauth.refresh_token(token_url, refresh_token=token["refresh_token"], client_id="ro-test")
    assert refreshed["refresh_token"] != token["refresh_token"]
    sessions = httpx.get(
        f"{live_server.url}/auth/sessions", headers={"Authorization": f"Bearer {refreshed['access_token']}"}
    ).json()
    assert sessions[0]["client_id"] == "ro-test"
