"""Processes sharing one FileTokenStore refresh once between them."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from silentauth.client import FileTokenStore, TokenAuth
from silentauth.clock import FakeClock
from tests.client.conftest import refresh_total
from tests.conftest import LiveServer

WORKER = Path(__file__).with_name("file_store_worker.py")
ROOT = Path(__file__).resolve().parents[2]


def test_8_processes_sharing_a_file_store_refresh_exactly_once(
    live_server_factory: Callable[..., LiveServer], shared_clock: FakeClock, tmp_path: Path
) -> None:
    live = live_server_factory(clock=shared_clock, reuse_grace=0)
    path = tmp_path / "cfg" / "tokens.json"
    parent = TokenAuth(token_url=f"{live.url}/auth/token", store=FileTokenStore(path), clock=shared_clock)
    parent.login("alice", "secret")
    before = json.loads(path.read_text())
    shared_clock.advance(901)  # the stored access token is now expired for everyone
    offset = shared_clock() - time.time()  # the workers' clocks follow the server's
    go = tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen(
            [sys.executable, str(WORKER), f"{live.url}/auth/token", f"{live.url}/api/me",
             str(path), str(offset), str(go), "4"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT,
        )
        for _ in range(8)
    ]
    try:
        for p in procs:
            assert p.stdout is not None
            assert p.stdout.readline().strip() == "ready", p.stderr.read() if p.stderr else ""
        go.touch()  # all eight hold the expired token in memory; release them together
        outputs = [p.communicate(timeout=60) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    statuses = [code for out, _ in outputs for code in json.loads(out.strip().splitlines()[-1])]
    assert statuses == [200] * 32, outputs
    outcomes = refresh_total(live)
    assert outcomes["rotated"] == 1 and outcomes["grace"] == 0 and outcomes["reuse_detected"] == 0
    after = json.loads(path.read_text())
    assert after["refresh_token"] != before["refresh_token"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    # The parent process adopts what the workers stored instead of refreshing again.
    assert parent.ensure_fresh().refresh_token == after["refresh_token"]
    assert refresh_total(live)["rotated"] == 1
