"""``silentauth storm`` from the outside: the JSON shape scripts rely on, the plot."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import LiveServer


def storm(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "silentauth", "storm", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def test_storm_json_has_exactly_the_documented_shape(tmp_path: Path) -> None:
    png = tmp_path / "storm.png"
    r = storm("--sessions", "300", "--hours", "2", "--json", "--plot", str(png))
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert set(out) == {"jitter_off", "jitter_on", "sessions_lost"}
    for name in ("jitter_off", "jitter_on"):
        assert set(out[name]) == {"peak", "mean", "peak_to_mean"}
        assert all(isinstance(v, float) for v in out[name].values())
        assert out[name]["peak_to_mean"] == pytest.approx(out[name]["peak"] / out[name]["mean"], rel=1e-2)
    assert out["sessions_lost"] == 0
    assert out["jitter_on"]["peak"] < out["jitter_off"]["peak"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size > 10_000


def test_storm_refuses_a_run_shorter_than_the_warmup() -> None:
    r = storm("--sessions", "10", "--hours", "0.5", "--json")
    assert r.returncode == 2
    assert "warm-up" in r.stderr


def test_storm_live_keeps_every_session_logged_in(live_server_factory: Callable[..., LiveServer]) -> None:
    live: LiveServer = live_server_factory(access_ttl=3, ttl_jitter=0.1)
    env = {**os.environ, "SILENTAUTH_STORM_USERNAME": "alice", "SILENTAUTH_STORM_PASSWORD": "secret"}
    r = storm("--live", "--url", live.url, "--sessions", "20", "--hours", str(8 / 3600), "--json", env=env)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["sessions_lost"] == 0
    assert out["sessions"] == 20
    assert out["access_ttl"] == 3
    # 20 clients refreshing about every 2 s for 8 s: the server saw the load.
    assert out["refreshes"] >= 40
    assert live.metric("silentauth_refresh_total", outcome="rotated") == out["refreshes"]


def test_module_entry_point_matches_the_cli_verb() -> None:
    """``python -m silentauth.storm`` parses the same options without the CLI."""
    args = ("--sessions", "50", "--hours", "1.1", "--json")
    via_module = subprocess.run(
        [sys.executable, "-m", "silentauth.storm", *args], capture_output=True, text=True, timeout=120
    )
    assert via_module.returncode == 0, via_module.stderr
    assert json.loads(via_module.stdout) == json.loads(storm(*args).stdout)
    refused = subprocess.run(
        [sys.executable, "-m", "silentauth.storm", "--hours", "0.1"], capture_output=True, text=True, timeout=120
    )
    assert refused.returncode == 2 and "warm-up" in refused.stderr
