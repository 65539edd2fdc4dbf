"""``silentauth serve`` as an operator meets it: failures to start, the ready line, SIGTERM.

Every start-up failure is one line naming the cause and exit 2 (a setting) or
3 (the environment); ``serving on`` means the service answers; SIGTERM lets a
request in flight finish, with its rotation committed.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import httpx
import pytest

from tests.conftest import free_port

SECRET = "serve-test-secret-key-with-32-bytes-or-more!"
# Shared stores (PostgreSQL, Redis) refuse to start without an explicit issuer.
ISSUER = "http://auth.test"


def serve_env(tmp_path: Path, **settings: str) -> dict[str, str]:
    """The environment of a ``serve`` child: a private SQLite file unless told otherwise."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SILENTAUTH_")}
    env.update(
        {
            "SILENTAUTH_DATABASE_URL": f"sqlite:///{tmp_path / 'serve.db'}",
            "SILENTAUTH_SECRET_KEY": SECRET,
            "SILENTAUTH_COOKIE_SECURE": "false",
            "SILENTAUTH_PORT": str(free_port()),
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update({f"SILENTAUTH_{k.upper()}": v for k, v in settings.items()})
    return env


def failed_start(tmp_path: Path, *args: str, **settings: str) -> subprocess.CompletedProcess[str]:
    """Run ``serve`` expecting it to give up; the finished process."""
    return subprocess.run(
        [sys.executable, "-m", "silentauth", "serve", *args],
        env=serve_env(tmp_path, **settings), capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )


def assert_one_line(result: subprocess.CompletedProcess[str], code: int, *words: str) -> None:
    """Exit ``code``, nothing on stdout, one stderr line holding every word, no traceback."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode == code, result.stderr
    assert len(lines) == 1 and result.stdout == "", result.stderr
    assert lines[0].startswith("silentauth: ") and "serving on" not in lines[0]
    for word in words:
        assert word in lines[0], lines[0]


def test_bad_log_level_is_one_line_exit_2(tmp_path: Path) -> None:
    # uvicorn answered an unknown level with a KeyError traceback.
    assert_one_line(failed_start(tmp_path, log_level="verbose"), 2, "SILENTAUTH_LOG_LEVEL", "'verbose'")


def test_unwritable_sqlite_path_is_one_line_exit_3(tmp_path: Path) -> None:
    # A path below a regular file cannot be created, even by root (unlike chmod).
    (tmp_path / "file").write_text("")
    url = f"sqlite:///{tmp_path / 'file' / 'db.sqlite'}"
    assert_one_line(failed_start(tmp_path, database_url=url), 3, "cannot create SQLite database", "file/db.sqlite")


def test_postgres_refusing_is_one_line_with_the_reason_exit_3(tmp_path: Path) -> None:
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/silentauth"
    assert_one_line(failed_start(tmp_path, database_url=url, issuer=ISSUER), 3, "cannot reach PostgreSQL", "Connection refused")


def test_redis_down_is_one_line_with_the_reason_exit_3(tmp_path: Path) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    assert_one_line(failed_start(tmp_path, database_url=url, issuer=ISSUER), 3, "cannot reach Redis", "Connection refused")


@pytest.mark.parametrize("workers", ["1", "2"])
def test_port_in_use_is_one_line_exit_3(tmp_path: Path, workers: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        result = failed_start(tmp_path, port=port, workers=workers)
    assert_one_line(result, 3, f"cannot listen on 127.0.0.1:{port}", "Address already in use")


class Serving:
    """A ``serve`` child whose stderr is read line by line."""

    def __init__(self, tmp_path: Path, *args: str, **settings: str) -> None:
        self.env = serve_env(tmp_path, **settings)
        self.url = f"http://127.0.0.1:{self.env['SILENTAUTH_PORT']}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "silentauth", "serve", *args],
            env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
        )
        self.lines: list[str] = []

    @property
    def stderr(self) -> IO[str]:
        assert self.proc.stderr is not None
        return self.proc.stderr

    def wait_for_serving(self, timeout: float = 30.0) -> str:
        """Block until the ``serving on`` line; return it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.stderr.readline()
            if not line:
                raise AssertionError(f"serve exited {self.proc.wait()}: {''.join(self.lines)}")
            self.lines.append(line)
            if "serving on" in line:
                return line
        raise AssertionError("no 'serving on' line")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise
        self.lines += self.stderr.readlines()
        return code


@pytest.fixture
def serving(tmp_path: Path) -> Iterator[type[Serving]]:
    started: list[Serving] = []

    def start(*args: str, **settings: str) -> Serving:
        s = Serving(tmp_path, *args, **settings)
        started.append(s)
        return s

    yield start  # type: ignore[misc]
    for s in started:
        if s.proc.poll() is None:
            s.proc.kill()
            s.proc.wait()


@pytest.mark.parametrize("workers", ["1", "2"])
def test_serving_on_is_printed_only_when_requests_are_answered(serving: type[Serving], workers: str) -> None:
    # The line came before uvicorn had bound the port or opened the store: a script
    # that waited for it got "connection refused".
    s = serving("--demo", workers=workers)
    line = s.wait_for_serving()
    assert (", 2 workers" in line) == (workers == "2")
    assert httpx.get(f"{s.url}/readyz", timeout=5).json() == {"status": "ready"}
    r = httpx.post(
        f"{s.url}/auth/token", data={"grant_type": "password", "username": "demo", "password": "demo"}, timeout=5
    )
    assert r.status_code == 200, r.text
    assert s.stop() == 0
    assert not any("Traceback" in line for line in s.lines), "".join(s.lines)


def test_sigterm_lets_a_refresh_in_flight_finish_and_commits_it(serving: type[Serving]) -> None:
    s = serving(log_level="warning", demo="true")
    s.wait_for_serving()
    token = httpx.post(
        f"{s.url}/auth/token", data={"grant_type": "password", "username": "demo", "password": "demo"}, timeout=5
    ).json()["refresh_token"]
    body = f"grant_type=refresh_token&refresh_token={token}".encode()
    head = (
        "POST /auth/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", int(s.env["SILENTAUTH_PORT"])), timeout=10) as conn:
        conn.sendall(head + body[:10])  # the request is in flight: head read, body pending
        time.sleep(0.3)
        s.proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        # Draining: no new connection is accepted, and the server has not exited.
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{s.url}/healthz", timeout=2)
        assert s.proc.poll() is None
        conn.sendall(body[10:])
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            chunk = conn.recv(65536)
            if not chunk:
                break
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
    successor = answer.split(b'"refresh_token":"', 1)[1].split(b'"', 1)[0].decode()
    assert s.stop() == 0
    # The answered rotation was committed: after a restart its successor rotates,
    # and the token it replaced is past its grace as a replay would be.
    again = serving(log_level="warning", reuse_grace="0")
    again.wait_for_serving()
    r = httpx.post(f"{again.url}/auth/token", data={"grant_type": "refresh_token", "refresh_token": successor})
    assert r.status_code == 200, r.text
    assert again.stop() == 0


def _children(pid: int) -> list[int]:
    """Process ids whose parent is ``pid`` (from /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry))
    return found


def test_two_workers_on_one_port_keep_one_lineage_per_session(serving: type[Serving]) -> None:
    from concurrent.futures import ThreadPoolExecutor

    s = serving(log_level="warning", demo="true", workers="2", rate_limit_login="off")
    s.wait_for_serving()
    assert len(_children(s.proc.pid)) == 2

    def post(form: dict[str, str]) -> httpx.Response:
        # A new connection per request: the kernel spreads them over both workers.
        return httpx.post(f"{s.url}/auth/token", data=form, timeout=20)

    login = {"grant_type": "password", "username": "demo", "password": "demo"}
    with ThreadPoolExecutor(16) as pool:
        tokens = [r.json()["refresh_token"] for r in pool.map(post, [login] * 4)]
        for _ in range(3):
            # Five racers per session with the same token, all sessions at once.
            racers = [{"grant_type": "refresh_token", "refresh_token": t} for t in tokens for _ in range(5)]
            answers = list(pool.map(post, racers))
            assert all(a.status_code == 200 for a in answers), [a.text for a in answers if a.status_code != 200][:3]
            successors = [a.json()["refresh_token"] for a in answers]
            # One successor per session, whichever worker answered: the lineage never forks.
            grouped = [set(successors[i * 5 : i * 5 + 5]) for i in range(len(tokens))]
            assert all(len(g) == 1 for g in grouped)
            tokens = [g.pop() for g in grouped]
    counters = {int(t.split(".")[2]) for t in tokens}
    assert counters == {3}
    assert s.stop() == 0
    assert not any("Traceback" in line for line in s.lines), "".join(s.lines)
