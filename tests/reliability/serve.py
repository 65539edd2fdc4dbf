"""``python -m silentauth serve`` as a real subprocess: start, kill -9, restart, measure.

The reliability tests need what an in-thread uvicorn cannot give: a process
that can be killed without warning, whose memory can be read from /proc, and
whose complete log output can be searched for secrets.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.conftest import free_port

SECRET = "reliability-secret-key-with-32-bytes-or-more!"


class ServeProcess:
    """One ``silentauth serve`` process on a SQLite file; restartable on the same file."""

    def __init__(self, db: Path, log: Path, **settings: str | int | float) -> None:
        self.db = db
        self.log_path = log
        self.env = {
            **os.environ,
            "SILENTAUTH_DATABASE_URL": f"sqlite:///{db}",
            "SILENTAUTH_SECRET_KEY": SECRET,
            "SILENTAUTH_COOKIE_SECURE": "false",
            "SILENTAUTH_LOG_LEVEL": "warning",
            "PYTHONUNBUFFERED": "1",
        }
        self.env.update({f"SILENTAUTH_{k.upper()}": str(v) for k, v in settings.items()})
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 30.0, same_port: bool = False) -> None:
        """Start (or restart, on a new port unless ``same_port``) and wait for ``/healthz``."""
        if not (same_port and self.port):
            self.port = free_port()
        env = {**self.env, "SILENTAUTH_PORT": str(self.port)}
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "silentauth", "serve"], env=env, stdout=log, stderr=log
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"silentauth serve exited {self.proc.returncode}: {self.log()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("silentauth serve did not start")
            time.sleep(0.05)

    def kill9(self) -> None:
        """SIGKILL: no shutdown hook, no flush, no close — a crash."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def rss_mb(self) -> float:
        """Resident memory of the server process (VmRSS), in MiB."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmRSS")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def metric(self, name: str, **labels: str) -> float:
        from tests.conftest import metric_value

        return metric_value(httpx.get(f"{self.url}/metrics").text, name, **labels)
