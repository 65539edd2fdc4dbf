"""Schemathesis against ``/openapi.json`` of a live server: no 5xx, every answer documented.

Generated requests (positive and negative; with no credential, a valid bearer
token or the service credential of ``/auth/service/*``) hit the real app on a
loopback port. Each response must be a non-5xx,
carry a documented status and content type, and match the documented schema.
``SILENTAUTH_FUZZ_EXAMPLES`` raises the number of requests per mode.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from silentauth.server.app import create_app
from tests.conftest import (
    FAST_PASSWORDS,
    REQUIRE_SERVICES,
    LiveServer,
    make_settings,
    run_live,
    seed_users,
)

try:
    import schemathesis
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_schema_conformance,
        status_code_conformance,
    )
except ImportError:  # pragma: no cover - schemathesis is a test extra
    if REQUIRE_SERVICES:
        raise
    pytest.skip("schemathesis is not installed (pip install schemathesis)", allow_module_level=True)

EXAMPLES = int(os.environ.get("SILENTAUTH_FUZZ_EXAMPLES", "100"))
SERVICE_CREDENTIAL = "fuzz-service-credential-0123456789abcdef"
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture
def documented_server(tmp_path: Path) -> Iterator[LiveServer]:
    """The real app (it serves ``/openapi.json`` itself) with one user."""
    s = make_settings(tmp_path, service_credential=SERVICE_CREDENTIAL)
    seed_users(s, {"alice": "secret"})
    yield from run_live(create_app(s, passwords=FAST_PASSWORDS))


def _bearer(url: str) -> str:
    r = httpx.post(
        f"{url}/auth/token", data={"grant_type": "password", "username": "alice", "password": "secret"}
    )
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_generated_requests_get_documented_non_5xx_answers(documented_server: LiveServer, mode: str) -> None:
    url = documented_server.url
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    strategy = schema.as_strategy(generation_mode=schemathesis.GenerationMode(mode))
    sent = []

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy, credential=st.sampled_from(["none", "bearer", "service"]))
    def run(case: schemathesis.Case, credential: str) -> None:
        headers = {
            "none": None,
            "bearer": {"Authorization": f"Bearer {_bearer(url)}"},
            "service": {"Authorization": f"Service {SERVICE_CREDENTIAL}"},  # the /auth/service/* back end
        }[credential]
        response = case.call_and_validate(base_url=url, headers=headers, checks=CHECKS)
        sent.append(response.status_code)

    run()
    assert len(sent) >= min(EXAMPLES, 50)
    assert all(code < 500 for code in sent)
