"""CORS for ``CORS_ORIGINS``: preflights, labelled responses, errors and renewals, settings."""

from __future__ import annotations

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from silentauth.errors import ConfigError
from silentauth.server.cors import CORSMiddleware
from silentauth.settings import Settings, normalize_origin
from tests.conftest import Service, ServiceFactory

pytestmark = pytest.mark.anyio

APP = "http://app.example.test:8080"
PREFLIGHT = {"Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "authorization"}


def bare(svc: Service) -> httpx.AsyncClient:
    """A client sending no Origin (the fixture's client sends the service's own)."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=svc.app), base_url="http://testserver")


def cors_headers(r: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in r.headers.items() if k.startswith("access-control-allow")}


@pytest.fixture
async def listed(service_factory: ServiceFactory) -> Service:
    svc: Service = await service_factory(cors_origins=(APP,), cors_max_age=1234, access_ttl=300, renew_within=60)
    await svc.add_user()
    return svc


async def test_preflight_for_any_route_names_origin_methods_headers_and_max_age(listed: Service) -> None:
    for path in ("/api/me", "/auth/refresh", "/auth/sessions/x", "/no/such/route"):
        r = await listed.client.options(path, headers={"Origin": APP, **PREFLIGHT})
        assert r.status_code == 204, path
        assert r.headers["access-control-allow-origin"] == APP
        assert r.headers["access-control-max-age"] == "1234"
        assert {"GET", "POST", "DELETE"} <= {m.strip() for m in r.headers["access-control-allow-methods"].split(",")}
        assert r.headers["vary"] == "Origin"
        assert r.content == b""


async def test_error_answers_carry_cors_so_the_page_can_read_them(listed: Service) -> None:
    # A 401's WWW-Authenticate is how the browser client tells "refresh" from "step up".
    r = await listed.client.get("/api/me", headers={"Origin": APP, "Authorization": "Bearer nope"})
    assert r.status_code == 401
    assert r.headers["access-control-allow-origin"] == APP
    assert "www-authenticate" in r.headers["access-control-expose-headers"].lower()


async def test_a_pushed_renewal_is_exposed_once_to_a_listed_origin(listed: Service) -> None:
    grant = await listed.password_grant()
    listed.clock.advance(250)  # within RENEW_WITHIN of expiry
    r = await listed.client.get(
        "/api/me", headers={"Origin": APP, "Authorization": f"Bearer {grant['access_token']}"}
    )
    assert r.status_code == 200 and r.headers["new-access-token"]
    # One merged field, not the resource kit's own next to ours.
    assert r.headers.get_list("access-control-expose-headers") == [
        "New-Access-Token, WWW-Authenticate, Retry-After"
    ]


async def test_own_origin_and_no_origin_get_vary_but_no_cors(listed: Service) -> None:
    async with bare(listed) as client:
        for headers in ({"Origin": "http://testserver"}, {}):
            r = await client.get("/healthz", headers=headers)
            assert r.status_code == 200 and cors_headers(r) == {}
            assert r.headers["vary"] == "Origin"


async def test_lookalike_origins_are_not_listed(listed: Service) -> None:
    for origin in (APP + "/", APP.replace("8080", "8081"), "https://app.example.test:8080", "null", APP + ".evil.test"):
        r = await listed.client.options("/api/me", headers={"Origin": origin, **PREFLIGHT})
        assert r.status_code == 403 and cors_headers(r) == {}, origin
        assert r.json()["error"] == "access_denied"


async def test_without_cors_origins_nothing_is_added_and_preflights_are_refused(service: Service) -> None:
    r = await service.client.get("/healthz", headers={"Origin": APP})
    assert cors_headers(r) == {} and "vary" not in r.headers
    r = await service.client.options("/auth/login", headers={"Origin": APP, **PREFLIGHT})
    assert r.status_code == 403 and cors_headers(r) == {}


async def test_options_without_origin_is_not_a_preflight(listed: Service) -> None:
    async with bare(listed) as client:
        r = await client.options("/auth/login", headers=PREFLIGHT)
    assert r.status_code == 405


async def test_an_existing_vary_is_extended_not_replaced() -> None:
    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"vary", b"Accept-Encoding")]})
        await send({"type": "http.response.body", "body": b"ok"})

    app = CORSMiddleware(inner, origins=[APP], max_age=5)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        r = await client.get("/", headers={"Origin": APP})
    assert r.headers["vary"] == "Accept-Encoding, Origin"
    assert r.headers["access-control-allow-origin"] == APP


async def test_a_response_start_without_headers_is_labelled() -> None:
    # ASGI makes "headers" optional on http.response.start.
    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": b"ok"})

    app = CORSMiddleware(inner, origins=[APP], max_age=5)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        r = await client.get("/", headers={"Origin": APP})
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == APP


def test_cors_origins_setting_is_normalized_and_wildcards_refused() -> None:
    s = Settings.load({"SILENTAUTH_CORS_ORIGINS": "HTTPS://App.Example.com:443/, http://127.0.0.1:5173"})
    assert s.cors_origins == ("https://app.example.com", "http://127.0.0.1:5173")
    assert normalize_origin("http://[::1]:80") == "http://[::1]"
    for bad in ("*", "null", "https://a.example/path", "a.example", "ftp://a.example", "https://a.example:99999"):
        with pytest.raises(ConfigError, match="CORS_ORIGINS"):
            normalize_origin(bad)
    with pytest.raises(ConfigError, match="CORS_MAX_AGE"):
        Settings(cors_max_age=-1)
