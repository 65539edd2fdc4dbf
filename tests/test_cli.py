"""The ``silentauth`` command line: as a real subprocess, and its jobs on a real runtime."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from silentauth.cli import sessions_job, users_job
from silentauth.clock import FakeClock
from silentauth.server.runtime import Runtime
from silentauth.stores import open_store
from tests.conftest import FAST_PASSWORDS, free_port, make_settings, metric_value


def run(tmp_path: Path, *args: str, stdin: str = "", env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {
        **os.environ,
        "SILENTAUTH_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
        **(env or {}),
    }
    return subprocess.run(
        [sys.executable, "-m", "silentauth", *args],
        input=stdin, capture_output=True, text=True, env=full_env, timeout=60, cwd=tmp_path,
    )


def test_users_add_list_remove(tmp_path: Path) -> None:
    assert run(tmp_path, "users", "add", "Alice", "--password-stdin", stdin="pw\n").returncode == 0
    listed = run(tmp_path, "users", "list")
    assert listed.stdout.startswith("alice\t")
    dup = run(tmp_path, "users", "add", "ALICE", "--password-stdin", stdin="pw\n")
    assert dup.returncode == 1 and "exists" in dup.stderr
    assert run(tmp_path, "users", "remove", "alice").returncode == 0
    assert run(tmp_path, "users", "list").stdout == ""
    assert run(tmp_path, "users", "remove", "alice").returncode == 1


def test_keys_rotate_keeps_old_keys_verifying(tmp_path: Path) -> None:
    first = run(tmp_path, "keys", "list").stdout.splitlines()
    assert len(first) == 1 and first[0].endswith("signing")
    rotated = run(tmp_path, "keys", "rotate")
    assert rotated.returncode == 0 and "(published now)" in rotated.stdout
    lines = run(tmp_path, "keys", "list").stdout.splitlines()
    assert len(lines) == 2
    # Published ahead: the old key signs on until the new one's start.
    assert lines[0].endswith("signing") and lines[1].endswith("next")
    at_once = run(tmp_path, "keys", "rotate", "--now")
    assert at_once.returncode == 0 and "signs from now" in at_once.stdout
    lines = run(tmp_path, "keys", "list").stdout.splitlines()
    assert [line.rsplit("\t", 1)[1] for line in lines] == ["verify-only", "signing", "next"]
    # The private key never appears in output or in the database in the clear.
    db = (tmp_path / "cli.db").read_bytes()
    assert b"PRIVATE KEY" not in db and b'"d"' not in db


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({"SILENTAUTH_ACCESS_TTL": "soon"}, "SILENTAUTH_ACCESS_TTL"),
        ({"SILENTAUTH_TTL_JITTER": "2"}, "SILENTAUTH_TTL_JITTER"),
        ({"SILENTAUTH_RATE_LIMIT_LOGIN": "lots"}, "SILENTAUTH_RATE_LIMIT_LOGIN"),
        ({"SILENTAUTH_DATABASE_URL": "mysql://x"}, "SILENTAUTH_DATABASE_URL"),
        ({"SILENTAUTH_TRUSTED_PROXIES": "127.0.0.1, nginx"}, "SILENTAUTH_TRUSTED_PROXIES"),
        ({"SILENTAUTH_TRUSTED_PROXIES": "10.0.0.0/33"}, "SILENTAUTH_TRUSTED_PROXIES"),
        ({"SILENTAUTH_PROXY_HEADERS": "x-real-ip"}, "SILENTAUTH_PROXY_HEADERS"),
        # A shared store without an explicit issuer: each instance would sign its own
        # http://HOST:PORT and refuse the others' tokens. Refused before any connection.
        ({"SILENTAUTH_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/x"}, "SILENTAUTH_ISSUER"),
        ({"SILENTAUTH_DATABASE_URL": "redis://127.0.0.1:1/0", "SILENTAUTH_SECRET_KEY": "k" * 40}, "SILENTAUTH_ISSUER"),
    ],
)
def test_bad_setting_exits_2_with_one_line_naming_it(tmp_path: Path, env: dict[str, str], name: str) -> None:
    result = run(tmp_path, "serve", env=env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and name in lines[0]


def test_flag_wins_over_environment(tmp_path: Path) -> None:
    result = run(tmp_path, "serve", "--port", "70000", env={"SILENTAUTH_PORT": "8000"})
    assert result.returncode == 2 and "SILENTAUTH_PORT" in result.stderr


def test_serve_demo_logs_in_demo_user_and_sessions_cli_sees_it(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "SILENTAUTH_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "silentauth", "serve", "--demo", "--port", str(port)],
        env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline and proc.poll() is None, "server did not start"
            time.sleep(0.1)
        r = httpx.post(f"{url}/auth/token", data={"grant_type": "password", "username": "demo", "password": "demo"})
        # demo: 30 s; a session's first token is spread over up to 90 % of that
        assert r.status_code == 200 and 3 <= r.json()["expires_in"] <= 30
        listed = run(tmp_path, "sessions", "list", "demo")
        assert listed.returncode == 0 and "live" in listed.stdout
        sid = listed.stdout.split("\t", 1)[0]
        assert run(tmp_path, "sessions", "revoke", sid).returncode == 0
        me = httpx.get(f"{url}/api/me", headers={"Authorization": f"Bearer {r.json()['access_token']}"})
        deadline = time.monotonic() + 2
        while me.status_code == 200 and time.monotonic() < deadline:
            time.sleep(0.1)
            me = httpx.get(f"{url}/api/me", headers={"Authorization": f"Bearer {r.json()['access_token']}"})
        assert me.status_code == 401, "admin revocation did not reach the running server"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def _runtime(tmp_path: Path) -> Runtime:
    settings = make_settings(tmp_path)
    rt = Runtime(settings, open_store(settings.database_url), FakeClock(1_800_000_000.0), FAST_PASSWORDS)
    await rt.start()
    await rt.ensure_user("alice", "secret")
    return rt


@pytest.mark.anyio
async def test_admin_revocations_go_through_the_service(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`sessions revoke` and `users remove` emit the service's events and fill its set."""
    rt = await _runtime(tmp_path)
    try:
        one = await rt.service.login("alice", "secret")
        two = await rt.service.login("alice", "secret")
        revoke = argparse.Namespace(action="revoke", session_id=one.session.id)
        assert await sessions_job(rt, revoke) == 0
        assert await sessions_job(rt, revoke) == 1  # already revoked: "no live session"
        assert one.session.id in rt.revocations
        admin = metric_value(rt.metrics.render().decode(), "silentauth_sessions_revoked_total", reason="admin")
        assert admin == 1
        assert await users_job(rt, argparse.Namespace(action="remove", name="Alice")) == 0
        assert two.session.id in rt.revocations
        admin = metric_value(rt.metrics.render().decode(), "silentauth_sessions_revoked_total", reason="admin")
        assert admin == 2
        listed = await sessions_job(rt, argparse.Namespace(action="list", name="alice"))
        assert listed == 1  # the user is gone
    finally:
        await rt.store.close()
    out = capsys.readouterr()
    assert f"revoked {one.session.id}" in out.out and "removed alice" in out.out


@pytest.mark.anyio
async def test_sessions_list_names_live_expired_and_revoked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rt = await _runtime(tmp_path)
    clock = rt.clock
    assert isinstance(clock, FakeClock)
    try:
        old = await rt.service.login("alice", "secret")
        clock.advance(rt.settings.refresh_idle_ttl)  # `old` is idle past its deadline now
        live = await rt.service.login("alice", "secret")
        gone = await rt.service.login("alice", "secret")
        await rt.service.revoke(gone.session.id, "logout")
        capsys.readouterr()
        assert await sessions_job(rt, argparse.Namespace(action="list", name="alice")) == 0
    finally:
        await rt.store.close()
    states = dict(line.split("\t")[:2] for line in capsys.readouterr().out.splitlines())
    assert states == {old.session.id: "expired", live.session.id: "live", gone.session.id: "revoked (logout)"}
