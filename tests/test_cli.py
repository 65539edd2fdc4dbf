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
    assert run(tmp_path, "users", "add", "Alice", "--password-stdin", stdin="pw-long-enough\n").returncode == 0
    listed = run(tmp_path, "users", "list")
    assert listed.stdout.startswith("alice\t")
    dup = run(tmp_path, "users", "add", "ALICE", "--password-stdin", stdin="pw-long-enough\n")
    assert dup.returncode == 1 and "exists" in dup.stderr
    assert run(tmp_path, "users", "remove", "alice").returncode == 0
    assert run(tmp_path, "users", "list").stdout == ""
    assert run(tmp_path, "users", "remove", "alice").returncode == 1


def test_clients_add_list_remove(tmp_path: Path) -> None:
    added = run(tmp_path, "clients", "add", "gateway", "--name", "API gateway")
    assert added.returncode == 0, added.stderr
    secret = added.stdout.split("client_secret: ")[1].strip()
    assert len(secret) >= 40
    assert run(tmp_path, "clients", "add", "spa", "--public").stdout.strip() == "added public client spa"
    assert run(tmp_path, "clients", "add", "gateway").returncode == 1
    assert run(tmp_path, "clients", "add", "bad id").returncode == 1
    rows = [line.split("\t") for line in run(tmp_path, "clients", "list").stdout.splitlines()]
    assert [(r[0], r[1]) for r in rows] == [
        ("browser", "public"), ("native", "public"), ("gateway", "confidential"), ("spa", "public"),
    ]
    assert secret not in run(tmp_path, "clients", "list").stdout
    assert run(tmp_path, "clients", "remove", "native").returncode == 1  # built in
    assert run(tmp_path, "clients", "remove", "gateway").returncode == 0
    assert run(tmp_path, "clients", "remove", "gateway").returncode == 1
    assert "gateway" not in run(tmp_path, "clients", "list").stdout


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


# --- every setting a flag; users add / passwd as a newcomer meets them ---


def test_every_setting_is_a_flag_with_help_before_or_after_the_subcommand() -> None:
    import dataclasses

    from silentauth import flags
    from silentauth.cli import build_parser
    from silentauth.settings import Settings

    names = [f.name for f in dataclasses.fields(Settings)]
    assert set(flags.HELP) == set(names), "every setting needs a help line in silentauth.flags.HELP"
    parser = build_parser()
    for name in names:
        flag = "--" + name.replace("_", "-")
        is_bool = str(next(f.type for f in dataclasses.fields(Settings) if f.name == name)) == "bool"
        value = [] if is_bool else ["7"]
        for argv in ([flag, *value, "users", "list"], ["users", "list", flag, *value], ["serve", flag, *value]):
            got = flags.overrides(parser.parse_args(argv))
            assert got == {name: True if is_bool else "7"}, (argv, got)
    help_text = subprocess.run(
        [sys.executable, "-m", "silentauth", "serve", "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert "--access-ttl ACCESS_TTL" in help_text and "SILENTAUTH_ACCESS_TTL, default 900" in help_text


def test_serve_access_ttl_flag_is_a_setting(tmp_path: Path) -> None:
    # `serve --access-ttl 60` was "unrecognized arguments".
    result = run(tmp_path, "serve", "--access-ttl", "0")
    assert result.returncode == 2 and "SILENTAUTH_ACCESS_TTL" in result.stderr


def test_database_url_flag_works_after_a_nested_subcommand(tmp_path: Path) -> None:
    # `users list --database-url …` failed: the flag was only known before `users`.
    other = f"sqlite:///{tmp_path / 'other.db'}"
    added = run(tmp_path, "users", "add", "bob", "--password-stdin", "--database-url", other, stdin="long-password\n")
    assert added.returncode == 0, added.stderr
    assert run(tmp_path, "users", "list", "--database-url", other).stdout.startswith("bob\t")
    assert run(tmp_path, "--database-url", other, "users", "list").stdout.startswith("bob\t")
    assert run(tmp_path, "users", "list").stdout == ""  # the default database is another one


def test_unknown_silentauth_variable_is_warned_about(tmp_path: Path) -> None:
    result = run(tmp_path, "users", "list", env={"SILENTAUTH_ACESS_TTL": "60"})
    assert result.returncode == 0
    assert "unknown variable SILENTAUTH_ACESS_TTL" in result.stderr
    assert "did you mean SILENTAUTH_ACCESS_TTL?" in result.stderr


def test_users_add_without_a_terminal_says_how_to_pass_the_password(tmp_path: Path) -> None:
    # Without a TTY getpass fell back to stdin and died with an EOFError traceback.
    result = run(tmp_path, "users", "add", "carol")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "--password-stdin" in result.stderr
    assert run(tmp_path, "users", "list").stdout == ""


def test_users_add_refuses_a_short_password(tmp_path: Path) -> None:
    result = run(tmp_path, "users", "add", "dave", "--password-stdin", stdin="short\n")
    assert result.returncode == 2 and "shorter than 8 characters" in result.stderr
    longer = run(tmp_path, "users", "add", "dave", "--password-stdin", "--min-password-length", "4", stdin="short\n")
    assert longer.returncode == 0, longer.stderr


def _at_a_terminal(tmp_path: Path, answers: list[str], *args: str) -> tuple[int, str]:
    """Run the CLI with a pseudo-terminal as its controlling terminal; type ``answers`` at prompts."""
    import pty
    import select
    import signal

    env = {**os.environ, "SILENTAUTH_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}"}
    pid, fd = pty.fork()
    if pid == 0:  # pragma: no cover - the child execs at once
        os.execve(sys.executable, [sys.executable, "-m", "silentauth", *args], env)
    output = b""
    pending = list(answers)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if not select.select([fd], [], [], 1.0)[0]:
            continue
        try:
            chunk = os.read(fd, 1024)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        output += chunk
        if pending and output.rstrip().endswith(b":"):
            # getpass switches echo off with TCSAFLUSH, which drops input typed
            # before it: answer like a person, a moment after the prompt.
            time.sleep(0.3)
            os.write(fd, pending.pop(0).encode() + b"\n")
            output += b"\n"
    os.close(fd)
    if time.monotonic() >= deadline:
        os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), output.decode(errors="replace")


def test_users_add_at_a_terminal_asks_twice(tmp_path: Path) -> None:
    code, out = _at_a_terminal(tmp_path, ["first-password", "other-password"], "users", "add", "erin")
    assert code == 2 and "again:" in out and "differ" in out
    code, out = _at_a_terminal(tmp_path, ["good-password", "good-password"], "users", "add", "erin")
    assert code == 0 and "added erin" in out, out


@pytest.mark.anyio
async def test_users_passwd_sets_the_password_and_revokes_the_sessions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    from silentauth.errors import InvalidGrant

    rt = await _runtime(tmp_path)
    try:
        one = await rt.service.login("alice", "secret")
        two = await rt.service.login("alice", "secret")
        monkeypatch.setattr("sys.stdin", io.StringIO("new-password\n"))
        args = argparse.Namespace(action="passwd", name="Alice", password_stdin=True)
        assert await users_job(rt, args) == 0
        assert one.session.id in rt.revocations and two.session.id in rt.revocations
        assert await rt.service.sessions(one.session.user_id) == []
        with pytest.raises(InvalidGrant):
            await rt.service.refresh(one.refresh_token)
        with pytest.raises(InvalidGrant):
            await rt.service.login("alice", "secret")
        assert (await rt.service.login("alice", "new-password")).access_token
        monkeypatch.setattr("sys.stdin", io.StringIO("new-password\n"))
        assert await users_job(rt, argparse.Namespace(action="passwd", name="nobody", password_stdin=True)) == 1
    finally:
        await rt.store.close()
