"""The browser client names RFC 8707 resources, checked against the live token service.

``createAuthClient({resources: [...]})`` sends them with the login and with every
refresh (``tests/web/interop_resources.mjs``, node with a cookie jar standing in
for the browser's): the token's ``aud`` is exactly those resources, a refresh
naming fewer narrows it, and an unknown resource fails the login with a
``LoginError`` whose code is ``invalid_target``.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

from tests.conftest import LiveServer, need_binary
from tests.web.test_node import ensure_node_modules

HERE = Path(__file__).resolve().parent
BILLING, FILES = "https://billing.example", "https://files.example"


def test_browser_client_resources_set_the_audience_at_login_and_refresh(
    live_server_factory: Callable[..., LiveServer],
) -> None:
    node = need_binary("node", "nodejs")
    ensure_node_modules()
    live = live_server_factory(resources=(BILLING, FILES))
    env = {**os.environ, "ISSUER": live.url, "BILLING": BILLING, "FILES": FILES}
    run = subprocess.run([node, "interop_resources.mjs"], cwd=HERE, env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    found = json.loads(run.stdout.strip().splitlines()[-1])
    assert found["login_aud"] == [BILLING, FILES]
    assert found["restored"] is True and found["refresh_aud"] == BILLING
    assert found["single_aud"] == BILLING
    assert found["unknown"]["name"] == "LoginError" and found["unknown"]["status"] == 400
    assert found["unknown"]["code"] == "invalid_target" and "unknown.example" in found["unknown"]["message"]
    assert found["spaces"] == "TypeError"
