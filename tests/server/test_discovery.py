"""RFC 8414 metadata, checked by hand against the RFC and by stock node clients.

The node half (``tests/web/interop_discovery.mjs``) is configured with nothing
but the issuer URL and a client's credentials: ``oauth4webapi`` discovers the
endpoints, ``jose`` verifies the access token from the discovered ``jwks_uri``.
Before this document existed their discovery failed with a 404.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable

import httpx

from tests.conftest import LiveServer, free_port, need_binary
from tests.web.test_node import HERE as WEB
from tests.web.test_node import ensure_node_modules

Factory = Callable[..., LiveServer]


def self_issued(factory: Factory) -> LiveServer:
    """A live server whose ISSUER is its own URL, as in production."""
    port = free_port()
    return factory(port=port, issuer=f"http://127.0.0.1:{port}")


def test_metadata_document_follows_rfc_8414(live_server_factory: Factory) -> None:
    live = self_issued(live_server_factory)
    issuer = live.runtime.settings.issuer
    r = httpx.get(f"{live.url}/.well-known/oauth-authorization-server")
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    doc = r.json()
    # §3.3: the issuer in the document is the one the client asked about, exactly.
    assert doc["issuer"] == issuer and issuer == live.url
    assert doc["token_endpoint"] == f"{issuer}/auth/token"
    assert doc["introspection_endpoint"] == f"{issuer}/auth/introspect"
    assert doc["revocation_endpoint"] == f"{issuer}/auth/revoke"
    assert doc["grant_types_supported"] == ["password", "refresh_token"]
    assert doc["response_types_supported"] == []  # §2: REQUIRED; no authorization endpoint here
    assert "openid" not in doc["scopes_supported"]
    assert {"client_secret_basic", "client_secret_post"} <= set(doc["introspection_endpoint_auth_methods_supported"])
    assert "none" not in doc["introspection_endpoint_auth_methods_supported"]
    assert doc["access_token_signing_alg_values_supported"] == ["ES256"]
    # Every advertised endpoint exists (no 404 for a client that follows the document).
    assert httpx.get(doc["jwks_uri"]).json()["keys"][0]["alg"] == "ES256"
    for name in ("token_endpoint", "introspection_endpoint", "revocation_endpoint"):
        assert httpx.post(doc[name], data={}).status_code in (400, 401), name


def test_oauth4webapi_discovery_and_jose_remote_jwks_drive_the_service(live_server_factory: Factory) -> None:
    node = need_binary("node", "nodejs")
    ensure_node_modules()
    live = self_issued(live_server_factory)
    _, secret = live.run(live.runtime.clients.register("node-gateway", "interop test"))
    assert secret is not None
    run = subprocess.run(
        [node, "interop_discovery.mjs"],
        cwd=WEB,
        env={**os.environ, "ISSUER": live.url, "CLIENT_ID": "node-gateway", "CLIENT_SECRET": secret},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    found = json.loads(run.stdout.strip().splitlines()[-1])
    assert found["issuer"] == live.url and found["token_endpoint"] == f"{live.url}/auth/token"
    assert found["alg"] == "ES256" and found["client_id"] == "node-gateway"
    assert found["introspected"] == {"active": True, "client_id": "node-gateway", "username": "alice"}
    assert found["after_revocation"] is False  # revoking the refresh token ended the session at once
