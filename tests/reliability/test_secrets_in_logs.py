"""No token, password or key ever appears in logs, error bodies or metrics labels.

The service is driven through every flow that handles a secret — password and
browser login, bad passwords, both refresh paths, reuse detection, revocation,
logout, forged and malformed tokens, an unexpected server error — once on the
real ``silentauth serve`` process at ``LOG_LEVEL=debug`` (its whole stdout and
stderr captured) and once in-process with every Python logger captured at
DEBUG (uvicorn's access log included). Then every secret of the run is
searched for, in several encodings.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from silentauth.core.encoding import b64encode
from silentauth.core.keys import KeyManager, MasterKey
from silentauth.settings import Rate
from silentauth.stores.sqlite import SQLiteStore
from tests.conftest import LiveServer, make_settings, seed_users
from tests.reliability.serve import SECRET, ServeProcess

PASSWORD = "pw-Tr0ub4dor&3-correct-horse"
WRONG = "wrong-pw-K9x2-battery-staple"


def drive(url: str) -> tuple[list[str], list[str]]:
    """Every secret-bearing flow once; returns (secrets seen, bodies of error answers)."""
    secrets = [PASSWORD, WRONG]
    bodies: list[str] = []

    def keep(r: httpx.Response) -> httpx.Response:
        if r.status_code >= 400:
            bodies.append(r.text + repr(dict(r.headers)))
        return r

    # The Origin a browser on the service's own page sends (the cookie routes demand it).
    with httpx.Client(base_url=url, timeout=10, headers={"Origin": url}) as c:
        form = {"grant_type": "password", "username": "alice", "password": PASSWORD}
        grant = keep(c.post("/auth/token", data=form)).json()
        secrets += [grant["access_token"], grant["refresh_token"]]
        keep(c.post("/auth/token", data={**form, "password": WRONG}))
        keep(c.post("/auth/token", data={**form, "username": "nobody", "password": WRONG}))
        keep(c.post("/auth/token", data={**form, "scope": "admin " + PASSWORD}))
        browser = keep(c.post("/auth/login", json={"username": "alice", "password": PASSWORD}))
        cookie = browser.cookies["silentauth-refresh"]
        secrets += [browser.json()["access_token"], browser.json()["csrf_token"], cookie]
        again = keep(c.post("/auth/refresh", headers={"X-CSRF-Token": browser.json()["csrf_token"]}))
        secrets += [again.json()["access_token"], again.json()["csrf_token"], again.cookies["silentauth-refresh"]]
        keep(c.post("/auth/refresh", headers={"X-CSRF-Token": WRONG}))
        rotated = keep(c.post("/auth/token", data={"grant_type": "refresh_token", "refresh_token": grant["refresh_token"]}))
        secrets += [rotated.json()["access_token"], rotated.json()["refresh_token"]]
        # Reuse after grace (REUSE_GRACE=0 here): the session is revoked.
        keep(c.post("/auth/token", data={"grant_type": "refresh_token", "refresh_token": grant["refresh_token"]}))
        keep(c.post("/auth/token", data={"grant_type": "refresh_token", "refresh_token": grant["refresh_token"][:-3] + "abc"}))
        keep(c.get("/api/me", headers={"Authorization": f"Bearer {rotated.json()['access_token']}"}))
        live = keep(c.post("/auth/token", data=form)).json()
        secrets += [live["access_token"], live["refresh_token"]]
        auth = {"Authorization": f"Bearer {live['access_token']}"}
        keep(c.get("/api/me", headers=auth))
        keep(c.get("/api/me", headers={"Authorization": f"Bearer {live['access_token']}x"}))
        keep(c.post("/api/echo", json={"password": PASSWORD}, headers=auth))
        keep(c.post("/auth/token", content=f"password={PASSWORD}&password={PASSWORD}", headers={"content-type": "application/x-www-form-urlencoded"}))
        keep(c.post("/auth/revoke", data={"token": live["refresh_token"]}))
        last = keep(c.post("/auth/token", data=form)).json()
        secrets += [last["access_token"], last["refresh_token"]]
        keep(c.post("/auth/logout", headers={"Authorization": f"Bearer {last['access_token']}"}))
        bodies.append(c.get("/metrics").text)
    return secrets, bodies


def key_material(db: Path) -> list[str]:
    """The server secret, keys derived from it, and the private signing keys."""
    master = MasterKey(SECRET.encode())
    out = [SECRET]
    for label in ("silentauth refresh-token v1", "silentauth key-encryption v1"):
        k = master.derive(label)
        out += [k.hex(), b64encode(k), base64.b64encode(k).decode()]

    async def private_keys() -> list[str]:
        store = SQLiteStore(f"sqlite:///{db}")
        await store.open()
        try:
            ring = await KeyManager(store, master, 86400, 0).load(0)
        finally:
            await store.close()
        found = []
        for key in ring:
            assert key.private is not None
            d = key.private.private_numbers().private_value
            found += [str(d), f"{d:x}", b64encode(d.to_bytes(32, "big"))]
        return found

    return out + asyncio.run(private_keys())


def assert_absent(haystack: str, secrets: list[str], where: str) -> None:
    for secret in secrets:
        for form in {secret, secret[-43:], secret.split(".")[-1]}:
            if len(form) >= 16:
                assert form not in haystack, f"a secret ({form[:12]}…) appears in {where}"


def test_secrets_never_reach_the_serve_process_logs_error_bodies_or_metrics(tmp_path: Path) -> None:
    db = tmp_path / "secrets.db"
    seed_users(make_settings(tmp_path, database_url=f"sqlite:///{db}", secret_key=SECRET), {"alice": PASSWORD})
    server = ServeProcess(db, tmp_path / "serve.log", log_level="debug", reuse_grace=0)
    server.start()
    try:
        secrets, bodies = drive(server.url)
    finally:
        server.stop()
    log = server.log()
    assert "Started server process" in log or "Uvicorn running" in log  # the capture works
    assert_absent(log, secrets + key_material(db), "the serve log")
    assert_absent("\n".join(bodies), secrets + key_material(db), "an error body or /metrics")


def test_secrets_never_reach_python_logs_at_debug(
    live_server_factory: Callable[..., LiveServer], caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    live = live_server_factory(users={"alice": PASSWORD}, reuse_grace=0, rate_limit_login=Rate(100, 60))
    # After start-up: uvicorn's config sets its own loggers' levels when it starts.
    caplog.set_level(logging.DEBUG)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "silentauth"):
        caplog.set_level(logging.DEBUG, logger=name)
    # uvicorn's loggers do not propagate to the root logger: listen on them directly.
    quiet = [logging.getLogger("uvicorn"), logging.getLogger("uvicorn.access")]
    for logger in quiet:
        logger.addHandler(caplog.handler)
    try:
        secrets, bodies = drive(live.url)
    finally:
        for logger in quiet:
            logger.removeHandler(caplog.handler)
    # httpx/httpcore are this test's own HTTP client (at DEBUG httpcore prints the
    # response headers it receives, Set-Cookie included): not the service's logs.
    server_side = [r for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]
    text = "\n".join(f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in server_side)
    assert "uvicorn.access" in text and "/auth/token" in text  # the capture works
    assert_absent(text, secrets, "a Python log record")
    assert_absent("\n".join(bodies), secrets, "an error body or /metrics")
