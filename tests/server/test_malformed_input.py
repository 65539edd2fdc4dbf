"""Every endpoint, every kind of garbage: a clear 4xx, never a 5xx."""

from __future__ import annotations

import pytest

from tests.conftest import Service

pytestmark = pytest.mark.anyio

ENDPOINTS = [
    ("POST", "/auth/token"),
    ("POST", "/auth/login"),
    ("POST", "/auth/refresh"),
    ("POST", "/auth/logout"),
    ("POST", "/auth/logout-all"),
    ("GET", "/auth/sessions"),
    ("DELETE", "/auth/sessions/x"),
    ("POST", "/auth/revoke"),
    ("GET", "/api/me"),
    ("POST", "/api/echo"),
    ("POST", "/api/payments"),
]

BODIES: list[tuple[bytes, str]] = [
    (b"", "application/x-www-form-urlencoded"),
    (b"\xff\xfe\x00garbage", "application/x-www-form-urlencoded"),
    (b"grant_type=password&username=%FF%FE&password=x", "application/x-www-form-urlencoded"),
    (b"grant_type=refresh_token&refresh_token=" + b"A" * 5000, "application/x-www-form-urlencoded"),
    (b"grant_type=password&username=a%00b&password=x", "application/x-www-form-urlencoded"),
    (b"a=" + b"x" * 70_000, "application/x-www-form-urlencoded"),
    (b'{"username": ["a"], "password": {"x": 1}}', "application/json"),
    (b"[" * 50_000, "application/json"),
    (b"\xc3\x28", "application/json"),
    (b"<xml/>", "text/xml"),
]

HEADERS: list[dict[str, str]] = [
    {"Authorization": "Bearer"},
    {"Authorization": "Bearer " + "a" * 9000},
    {"Authorization": "Bearer a.b.c"},
    {"Authorization": "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."},
    {"Authorization": "Basic Zm9vOmJhcg=="},
    {"Cookie": "silentauth-refresh=v1.x.1.y", "X-CSRF-Token": "z"},
    {"Cookie": "silentauth-refresh=" + "%FF" * 100},
    {"Content-Length": "not-a-number"},
]


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
async def test_garbage_bodies_never_cause_5xx(service: Service, method: str, path: str) -> None:
    for body, ctype in BODIES:
        r = await service.client.request(method, path, content=body, headers={"content-type": ctype})
        assert r.status_code < 500, (body[:40], r.status_code, r.text)
        assert r.headers["content-type"].startswith("application/json")
        assert "Traceback" not in r.text


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
async def test_hostile_headers_never_cause_5xx(service: Service, method: str, path: str) -> None:
    for headers in HEADERS:
        r = await service.client.request(method, path, headers=headers, content=b"")
        assert r.status_code < 500, (headers, r.status_code, r.text)


async def test_oversized_body_is_413(service: Service) -> None:
    r = await service.client.post(
        "/auth/token", content=b"a=" + b"x" * 70_000, headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert r.status_code == 413


async def test_unknown_path_and_method_are_json_errors(service: Service) -> None:
    r = await service.client.get("/nope")
    assert r.status_code == 404 and r.json()["error"] == "not_found"
    r = await service.client.get("/auth/token")
    assert r.status_code == 405
