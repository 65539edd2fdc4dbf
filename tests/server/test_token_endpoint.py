"""RFC 6749 token endpoint: password grant, rotation, grace, reuse detection, expiry."""

from __future__ import annotations

import base64
import json
import logging

import pytest
from starlette.types import Message

from silentauth.core.encoding import dumps
from silentauth.core.rotation_rules import RETRY_WINDOW
from silentauth.core.sessions import Grant
from silentauth.server.token_endpoint import route_path, token_answer
from tests.conftest import Service, ServiceFactory
from tests.server.test_errors import FORM, call
from tests.stores.test_conformance import make_session

pytestmark = pytest.mark.anyio


async def test_password_grant_returns_rfc6749_token_response(service: Service) -> None:
    r = await service.client.post(
        "/auth/token", data={"grant_type": "password", "username": "alice", "password": "secret"}
    )
    assert r.status_code == 200
    assert r.headers["cache-control"] == "no-store"
    body = r.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "refresh_token", "scope", "device_token"}
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 900
    assert service.metric("silentauth_login_total", outcome="ok") == 1


async def test_wrong_password_and_unknown_user_answer_identically(service: Service) -> None:
    a = await service.client.post("/auth/token", data={"grant_type": "password", "username": "alice", "password": "nope"})
    b = await service.client.post("/auth/token", data={"grant_type": "password", "username": "mallory", "password": "nope"})
    assert a.status_code == b.status_code == 400
    assert a.json() == b.json() == {"error": "invalid_grant", "error_description": "Invalid user name or password."}
    assert service.metric("silentauth_login_total", outcome="bad_credentials") == 2


async def test_refresh_rotates_to_a_new_token_and_old_one_enters_grace(service: Service) -> None:
    first = await service.password_grant()
    r = await service.refresh(first["refresh_token"])
    assert r.status_code == 200
    second = r.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert service.metric("silentauth_refresh_total", outcome="rotated") == 1
    # A retry of the old token inside the grace window converges on the same successor.
    again = await service.refresh(first["refresh_token"])
    assert again.status_code == 200
    assert again.json()["refresh_token"] == second["refresh_token"]
    assert service.metric("silentauth_refresh_total", outcome="grace") == 1


async def test_refresh_reuse_after_grace_revokes_session(service: Service) -> None:
    first = await service.password_grant()
    used = (await service.refresh(first["refresh_token"])).json()
    second = (await service.refresh(used["refresh_token"])).json()  # the successor was used
    service.clock.advance(RETRY_WINDOW + 1)  # past every window
    stolen = await service.refresh(first["refresh_token"])
    assert stolen.status_code == 400
    assert stolen.json()["error"] == "invalid_grant"
    assert service.metric("silentauth_refresh_total", outcome="reuse_detected") == 1
    assert service.metric("silentauth_sessions_revoked_total", reason="reuse") == 1
    # The whole session is dead: the legitimate successor and its access token too.
    assert (await service.refresh(second["refresh_token"])).status_code == 400
    me = await service.client.get("/api/me", headers={"Authorization": f"Bearer {second['access_token']}"})
    assert me.status_code == 401
    assert 'error="invalid_token"' in me.headers["www-authenticate"]


async def test_grandparent_token_inside_grace_is_reuse_under_the_grace_rule(
    service_factory: ServiceFactory,
) -> None:
    service = await service_factory(rotation_rule="grace")
    await service.add_user()
    t0 = (await service.password_grant())["refresh_token"]
    t1 = (await service.refresh(t0)).json()["refresh_token"]
    assert (await service.refresh(t1)).status_code == 200
    # t0 is two generations old: this rule's grace covers one generation only.
    assert (await service.refresh(t0)).status_code == 400
    assert service.metric("silentauth_refresh_total", outcome="reuse_detected") == 1


async def test_session_ends_after_idle_ttl(service_factory: ServiceFactory) -> None:
    svc: Service = await service_factory(refresh_idle_ttl=3600)
    await svc.add_user()
    token = (await svc.password_grant())["refresh_token"]
    svc.clock.advance(3000)
    token = (await svc.refresh(token)).json()["refresh_token"]  # use extends idleness
    svc.clock.advance(3000)
    token = (await svc.refresh(token)).json()["refresh_token"]
    svc.clock.advance(3601)
    r = await svc.refresh(token)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    assert svc.metric("silentauth_refresh_total", outcome="expired") == 1


async def test_rotation_never_extends_the_absolute_session_limit(service_factory: ServiceFactory) -> None:
    svc: Service = await service_factory(session_max_age=1000, refresh_idle_ttl=600, access_ttl=300)
    await svc.add_user()
    token = (await svc.password_grant())["refresh_token"]
    for _ in range(3):
        svc.clock.advance(290)
        r = await svc.refresh(token)
        assert r.status_code == 200
        token = r.json()["refresh_token"]
    # 870 s in: the access token is capped at the session's end, not 300 s away.
    assert r.json()["expires_in"] <= 130
    svc.clock.advance(140)
    assert (await svc.refresh(token)).json()["error"] == "invalid_grant"


async def test_scope_on_refresh_may_narrow_but_never_widen(service: Service) -> None:
    grant = await service.password_grant(scope="profile api")
    assert grant["scope"] == "profile api"
    narrowed = await service.refresh(grant["refresh_token"], scope="api")
    assert narrowed.json()["scope"] == "api"
    wider = await service.refresh(narrowed.json()["refresh_token"], scope="api admin")
    assert wider.status_code == 400 and wider.json()["error"] == "invalid_scope"


async def test_login_with_scope_outside_the_allowed_set_is_invalid_scope(service: Service) -> None:
    r = await service.client.post(
        "/auth/token", data={"grant_type": "password", "username": "alice", "password": "secret", "scope": "root"}
    )
    assert r.status_code == 400 and r.json()["error"] == "invalid_scope"


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({}, "invalid_request"),
        ({"grant_type": "client_credentials"}, "unsupported_grant_type"),
        ({"grant_type": "password", "username": "alice"}, "invalid_request"),
        ({"grant_type": "refresh_token"}, "invalid_request"),
        ({"grant_type": "refresh_token", "refresh_token": "garbage"}, "invalid_grant"),
    ],
)
async def test_token_endpoint_errors_are_rfc6749_json(service: Service, data: dict[str, str], error: str) -> None:
    r = await service.client.post("/auth/token", data=data)
    assert r.status_code == 400
    assert r.json()["error"] == error
    assert isinstance(r.json()["error_description"], str)


async def test_repeated_parameters_are_invalid_request(service: Service) -> None:
    r = await service.client.post(
        "/auth/token",
        content=b"grant_type=password&username=alice&username=bob&password=x",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 400 and "repeated" in r.json()["error_description"]


async def test_access_token_carries_rfc9068_claims(service: Service) -> None:
    from silentauth.core.tokens import decode_unverified

    grant = await service.password_grant()
    header, claims = decode_unverified(grant["access_token"])
    assert header["typ"] == "at+jwt" and header["alg"] == "ES256" and header["kid"]
    assert {"iss", "sub", "aud", "exp", "iat", "jti", "sid", "scope", "auth_time", "client_id"} <= set(claims)
    me = await service.client.get("/api/me", headers={"Authorization": f"Bearer {grant['access_token']}"})
    assert me.json()["username"] == "alice" and me.json()["session_id"] == claims["sid"]


async def test_refresh_tokens_are_not_stored_in_the_database(service: Service, tmp_path: object) -> None:
    import sqlite3

    grant = await service.password_grant()
    rotated = (await service.refresh(grant["refresh_token"])).json()["refresh_token"]
    path = service.runtime.settings.database_url.partition("///")[2]
    dump = "\n".join(sqlite3.connect(path).iterdump())
    mac = rotated.rsplit(".", 1)[1]
    assert mac not in dump and grant["refresh_token"].rsplit(".", 1)[1] not in dump
    assert "'secret'" not in dump  # the password (a quoted value in the dump) is stored as an Argon2id hash only


async def test_default_scope_does_not_claim_openid_since_no_id_token_is_issued(service: Service) -> None:
    grant = await service.password_grant()
    assert grant["scope"] == "profile api" and "id_token" not in grant
    r = await service.client.post(
        "/auth/token",
        data={"grant_type": "password", "username": "alice", "password": "secret", "scope": "openid"},
    )
    assert r.status_code == 400 and r.json()["error"] == "invalid_scope"


async def test_grandparent_token_inside_the_retry_window_gets_the_live_token(service: Service) -> None:
    # Lock-free threads (Authlib) move the counter c -> c + 2 while one still holds c.
    t0 = (await service.password_grant())["refresh_token"]
    t1 = (await service.refresh(t0)).json()["refresh_token"]
    t2 = (await service.refresh(t1)).json()["refresh_token"]
    late = await service.refresh(t0)
    assert late.status_code == 200 and late.json()["refresh_token"] == t2  # no fork
    service.clock.advance(RETRY_WINDOW + 1)
    assert (await service.refresh(t0)).status_code == 400  # later, it is reuse


async def test_token_response_is_compact_json_with_its_exact_length(service: Service) -> None:
    status, headers, body = await call(
        service.app, "POST", "/auth/token", [FORM], b"grant_type=password&username=alice&password=secret"
    )
    assert status == 200
    # ASGI header names are lower case; the length lets HTTP/1.1 skip chunking.
    assert (b"content-length", str(len(body)).encode()) in headers
    assert body == json.dumps(json.loads(body), separators=(",", ":")).encode()


@pytest.mark.parametrize(
    ("access", "refresh", "scope", "device"),
    [
        ("eyJh.eyJz.c2ln", "rt-AbC_123.x", "openid api", ""),
        ("a.b.c", "", "api", ""),  # a client given no refresh token
        ("a.b.c", "r", "", "dev-Tok_1"),  # a login's device token
        ('q"uote\\back', "\u2028\x00\x1f\x7f", "ünïcode \ud800 tab\t", "é"),
    ],
)
def test_the_answer_template_writes_the_bytes_dumps_writes(access: str, refresh: str, scope: str, device: str) -> None:
    grant = Grant(access, 900, refresh, scope, make_session(), device_token=device)
    payload: dict[str, object] = {"access_token": access, "token_type": "Bearer", "expires_in": 900, "scope": scope}
    if refresh:
        payload["refresh_token"] = refresh
    if device:
        payload["device_token"] = device
    assert token_answer(grant) == dumps(payload) == json.dumps(payload, separators=(",", ":")).encode()


async def test_a_store_outage_is_a_503_with_retry_after_logged_once(
    service: Service, caplog: pytest.LogCaptureFixture
) -> None:
    g = await service.password_grant()
    await service.runtime.store.close()  # the database goes away under the service
    with caplog.at_level(logging.WARNING, logger="silentauth"):
        answers = [await service.refresh(g["refresh_token"]) for _ in range(3)]
    for r in answers:
        assert r.status_code == 503 and r.headers["retry-after"] == "2"
        assert r.json()["error"] == "temporarily_unavailable"
    # One line per outage, not one per request, and it says what failed.
    warnings = [rec.getMessage() for rec in caplog.records if rec.levelno == logging.WARNING]
    assert warnings == ["store unavailable: store is not open"]


async def test_an_empty_parameter_counts_as_missing(service: Service) -> None:
    r = await service.client.post("/auth/token", data={"grant_type": "password", "username": "", "password": "x"})
    assert r.status_code == 400
    assert r.json() == {
        "error": "invalid_request",
        "error_description": "The parameter 'username' is required and must be a string.",
    }


async def test_the_password_grant_hands_every_field_to_the_service(service_factory: ServiceFactory) -> None:
    svc = await service_factory(client_ip="10.1.2.3", resources=("https://api.example",), short_session_max_age=600)
    await svc.add_user()
    fields = {"grant_type": "password", "username": "alice", "password": "secret"}
    r = await svc.client.post(
        "/auth/token",
        data={**fields, "remember": "no", "resource": "https://api.example", "scope": "api"},
        headers={"User-Agent": "probe/1"},
    )
    body = r.json()
    service = svc.runtime.service
    s = await service.store.get_session(service.session_of(body["refresh_token"]))
    assert s is not None
    assert (s.ip, s.user_agent, s.client_id, s.resources, s.scope) == (
        "10.1.2.3", "probe/1", "native", "https://api.example", "api"
    )
    assert s.expires_at == svc.clock() + 600  # remember=no: the short lifetime
    # The device token comes back with the next login and keeps its device id.
    again = await svc.client.post(
        "/auth/token", data={**fields, "device_token": body["device_token"]}, headers={"User-Agent": ""}
    )
    assert again.json()["device_token"].split(".")[1] == body["device_token"].split(".")[1]
    s = await service.store.get_session(service.session_of(again.json()["refresh_token"]))
    assert s is not None and s.user_agent == "" and s.expires_at > svc.clock() + 600


async def test_the_refresh_grant_hands_the_resource_to_the_service(service_factory: ServiceFactory) -> None:
    resources = ("https://api.example", "https://files.example")
    svc = await service_factory(resources=resources)
    await svc.add_user()
    first = await svc.password_grant(resource=" ".join(resources))
    r = await svc.refresh(first["refresh_token"], resource="https://files.example")
    assert r.status_code == 200
    segment = r.json()["access_token"].split(".")[1]
    aud = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))["aud"]
    assert aud == "https://files.example"


async def test_a_confidential_clients_token_without_its_secret_is_refused_and_says_why(service: Service) -> None:
    _, secret = await service.runtime.clients.register("gateway", "test")
    assert secret is not None
    login = {"grant_type": "password", "username": "alice", "password": "secret"}
    grant = (await service.client.post("/auth/token", data={**login, "client_id": "gateway", "client_secret": secret})).json()
    r = await service.refresh(grant["refresh_token"])
    assert r.status_code == 401
    assert r.json() == {
        "error": "invalid_client",
        "error_description": "This refresh token was issued to a confidential client: authenticate as it.",
    }
    # A client that forgot its secret logs nobody out: the token still works with it.
    again = await service.client.post(
        "/auth/token",
        data={"grant_type": "refresh_token", "refresh_token": grant["refresh_token"], "client_id": "gateway", "client_secret": secret},
    )
    assert again.status_code == 200, again.text


async def test_a_request_without_a_peer_address_is_served_with_an_empty_one(service: Service) -> None:
    # ASGI makes "client" optional (a Unix socket has none): the grant must still work.
    body = b"grant_type=password&username=alice&password=secret"
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/auth/token", "raw_path": b"/auth/token", "root_path": "",
        "query_string": b"", "server": ("testserver", 80), "client": None,
        "headers": [(b"host", b"testserver"), FORM, (b"content-length", str(len(body)).encode())],
    }
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await service.app(scope, receive, send)
    assert sent[0]["status"] == 200
    answer = json.loads(b"".join(m.get("body", b"") for m in sent[1:]))
    core = service.runtime.service
    s = await core.store.get_session(core.session_of(answer["refresh_token"]))
    assert s is not None and s.ip == ""


@pytest.mark.parametrize(
    ("path", "root", "route"),
    [
        ("/sa/auth/token", "/sa", "/auth/token"),
        ("/auth/token", "", "/auth/token"),
        ("/sabc/auth/token", "/sa", "/sabc/auth/token"),
        ("/sa", "/sa", "/sa"),
    ],
)
def test_route_path_strips_the_mount_point_only(path: str, root: str, route: str) -> None:
    assert route_path({"type": "http", "path": path, "root_path": root}) == route
    if not root:
        assert route_path({"type": "http", "path": path}) == route


async def test_a_confidential_clients_token_refused_without_its_secret_is_not_used_up(service: Service) -> None:
    # Refused before anything rotates: long after the refusal (past every retry
    # window) the token still rotates normally with the secret, and is not reuse.
    _, secret = await service.runtime.clients.register("gateway", "test")
    assert secret is not None
    creds = {"client_id": "gateway", "client_secret": secret}
    login = {"grant_type": "password", "username": "alice", "password": "secret", **creds}
    token = (await service.client.post("/auth/token", data=login)).json()["refresh_token"]
    assert (await service.refresh(token)).status_code == 401
    service.clock.advance(RETRY_WINDOW + 1)
    r = await service.client.post("/auth/token", data={"grant_type": "refresh_token", "refresh_token": token, **creds})
    assert r.status_code == 200, r.text
    assert service.metric("silentauth_refresh_total", outcome="rotated") == 1


async def test_a_public_clients_token_refreshes_without_a_secret_beside_confidential_clients(service: Service) -> None:
    await service.runtime.clients.register("gateway", "test")
    token = (await service.password_grant())["refresh_token"]  # the default public client
    r = await service.refresh(token)
    assert r.status_code == 200, r.text
