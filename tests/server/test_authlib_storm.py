"""Authlib's OAuth2Session shared by 20 threads, no lock, leeway 60 s on 30 s tokens.

Every call sees the token as expired and refreshes, so rotations race and a thread
can present ``c`` after the counter reached ``c + 2``. Under the former one-generation
grace rule that revoked the session; the default rule must not.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from authlib.integrations.requests_client import OAuth2Session

from tests.conftest import LiveServer

THREADS = 20
CALLS = 6


@pytest.mark.parametrize("rule", ["burst", "late_once"])
def test_twenty_lock_free_authlib_threads_keep_their_session(
    live_server_factory: Callable[..., LiveServer], rule: str
) -> None:
    live = live_server_factory(access_ttl=30, rotation_rule=rule)
    live.run(live.runtime.clients.register("authlib-storm", confidential=False))
    token_url = f"{live.url}/auth/token"
    session = OAuth2Session(
        client_id="authlib-storm", token_endpoint_auth_method="none", token_endpoint=token_url, leeway=60
    )
    session.fetch_token(token_url, username="alice", password="secret", grant_type="password")
    statuses: list[int] = []
    errors: list[BaseException] = []
    start = threading.Barrier(THREADS)

    def worker() -> None:
        start.wait()
        for _ in range(CALLS):
            try:
                statuses.append(session.get(f"{live.url}/api/me", timeout=10).status_code)
            except Exception as exc:  # an invalid_grant on refresh surfaces here
                errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert live.metric("silentauth_refresh_total", outcome="rotated") >= 2  # the storm happened
    assert errors == [] and set(statuses) == {200}, (errors[:3], sorted(set(statuses)))
    assert live.metric("silentauth_refresh_total", outcome="reuse_detected") == 0
