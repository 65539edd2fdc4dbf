"""Unexpected failures: a JSON 500, logged by type only, never a traceback."""

from __future__ import annotations

import logging

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from silentauth.server.app import create_app
from tests.conftest import FAST_PASSWORDS, make_settings, run_live


def test_unexpected_error_is_a_json_500_logged_without_message_or_traceback(
    tmp_path: object, caplog: pytest.LogCaptureFixture
) -> None:
    async def boom(request: Request) -> Response:
        raise RuntimeError("v1.leaked-refresh-token-in-an-exception-message")

    app = create_app(make_settings(tmp_path), passwords=FAST_PASSWORDS)  # type: ignore[arg-type]
    app.router.routes.append(Route("/boom", boom))
    caplog.set_level(logging.DEBUG)
    gen = run_live(app)
    live = next(gen)
    try:
        with httpx.Client(base_url=live.url) as client:
            r = client.get("/boom")
            assert r.status_code == 500
            assert r.json() == {"error": "server_error", "error_description": "An unexpected error occurred."}
            assert client.get("/healthz").status_code == 200  # same keep-alive connection survives
    finally:
        for _ in gen:
            pass
    assert "RuntimeError" in caplog.text
    assert "leaked-refresh-token" not in caplog.text
    assert "Traceback" not in caplog.text
