"""The bench's refresh peers really rotate: the comparison is with stacks doing the same job.

Each peer is started as ``make bench`` starts it, and driven in its own dialect
(the load generator's): a session and two refreshes, each answering a new refresh
token; oidc-provider, which allows no grace, must then refuse the first one replayed.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator

import httpx
import pytest

from bench.loadgen import DIALECTS
from bench.servers import NODE, OIDC_DIR, Stack, running
from tests.conftest import missing

pytestmark = pytest.mark.slow  # each peer starts a real server (migrations, 256 code flows)


def _post(port: int, request: tuple[str, dict[str, str], bytes]) -> httpx.Response:
    path, headers, body = request
    return httpx.post(f"http://127.0.0.1:{port}{path}", headers=headers, content=body, timeout=30)


@pytest.fixture(params=["django-oauth-toolkit", "oidc-provider"])
def peer(request: pytest.FixtureRequest) -> Iterator[Stack]:
    name = str(request.param)
    if name == "oidc-provider":
        if not NODE.is_file() or not (OIDC_DIR / "node_modules" / "oidc-provider").is_dir():
            missing("oidc-provider and its Node.js 22 are not installed (cd bench/peers/oidc && npm ci)")
    elif importlib.util.find_spec("oauth2_provider") is None or importlib.util.find_spec("granian") is None:
        missing("django-oauth-toolkit or granian is not installed (bench extras)")
    with running((name,)) as stacks:
        yield stacks[name]


def test_peer_rotates_and_refuses_a_replayed_token(peer: Stack) -> None:
    dialect = DIALECTS[peer.name]
    r = _post(peer.port, dialect.login())
    assert r.status_code == 200, r.text
    first = dialect.token_from_login(r.json())
    r = _post(peer.port, dialect.refresh(first))
    assert r.status_code == 200, r.text
    second = dialect.token_from_refresh(r.json())
    assert second != first
    r = _post(peer.port, dialect.refresh(second))
    assert r.status_code == 200, r.text
    third = dialect.token_from_refresh(r.json())
    assert third not in (first, second)
    if peer.name == "oidc-provider":
        # No grace: a consumed refresh token is refused (and its grant revoked).
        r = _post(peer.port, dialect.refresh(first))
        assert r.status_code == 400 and json.loads(r.text)["error"] == "invalid_grant"
        r = _post(peer.port, dialect.refresh(third))
        assert r.status_code == 400, "reuse must revoke the whole grant"
    # django-oauth-toolkit's REFRESH_TOKEN_GRACE_PERIOD_SECONDS lets a replay through
    # for a while (as silentauth's REUSE_GRACE does): its rotation is what is compared.
