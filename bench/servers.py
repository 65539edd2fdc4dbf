"""The three stacks under test, each one worker process on loopback.

- ``silentauth``: ``python -m silentauth serve`` (uvicorn, one process, SQLite
  store, rate limits off, ``SILENTAUTH_*`` settings from the environment);
  its no-op baseline is ``GET /healthz`` of the same server.
- ``silentauth-granian``: the same app under granian ``--interface asgi``
  (an experiment: what a faster HTTP server buys us; not the shipped path);
- ``simplejwt``, ``flask-jwt-extended`` and ``django-oauth-toolkit``: granian,
  ``--interface wsgi --workers 1`` with granian's default threads; their no-op
  is ``GET /noop``;
- ``oidc-provider`` (opaque tokens, signs nothing) and ``oidc-provider-idtoken``
  (also signs an RS256 ID token per refresh): ``node bench/peers/oidc/server.mjs``
  on the Node.js from that directory's ``node_modules`` (``npm ci`` there);
  its no-op is ``GET /noop``.

Servers are pinned to CPU 0 and the load generator to CPU 1 (when the
machine has two or more), so each gets one core and neither steals the
other's: "one worker" then means one core for every stack alike.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from bench.loadgen import PASSWORD, USERNAME

ROOT = Path(__file__).resolve().parent.parent
SECRET = "bench-only-silentauth-secret-key-0123456789abcdef"
SERVER_CPU = 0
SERVED_BY = {
    "silentauth": "uvicorn, 1 process",
    "silentauth-granian": "granian asgi, 1 worker",
    "simplejwt": "granian wsgi, 1 worker",
    "flask-jwt-extended": "granian wsgi, 1 worker",
    "django-oauth-toolkit": "granian wsgi, 1 worker",
    "oidc-provider": "node, 1 process",
    "oidc-provider-idtoken": "node, 1 process",
}
NEEDS = {
    "silentauth": ("uvicorn",),
    "silentauth-granian": ("granian",),
    "simplejwt": ("granian", "django", "rest_framework_simplejwt"),
    "flask-jwt-extended": ("granian", "flask", "flask_jwt_extended"),
    "django-oauth-toolkit": ("granian", "django", "oauth2_provider"),
}
OIDC_DIR = ROOT / "bench" / "peers" / "oidc"
# The Node.js that package-lock.json pins (oidc-provider 9 supports Node 22+).
NODE = OIDC_DIR / "node_modules" / ".bin" / "node"
NODE_STACKS = {"oidc-provider": "opaque", "oidc-provider-idtoken": "idtoken"}
DEFAULT_STACKS = (
    "silentauth",
    "silentauth-granian",
    "simplejwt",
    "flask-jwt-extended",
    "django-oauth-toolkit",
    "oidc-provider",
    "oidc-provider-idtoken",
)
LOADGEN_CPU = 1


@dataclass(frozen=True)
class Stack:
    """A running server: its name, port and how it is served."""

    name: str
    port: int
    served_by: str
    pid: int


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pin(cpu: int) -> Callable[[], None] | None:
    """A ``preexec_fn`` pinning the child to ``cpu``, or None on a 1-core box."""
    if (os.cpu_count() or 1) < 2 or not hasattr(os, "sched_setaffinity"):
        return None
    return lambda: os.sched_setaffinity(0, {cpu})


def _env(extra: dict[str, str]) -> dict[str, str]:
    env = {**os.environ, **extra}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def _wait(proc: subprocess.Popen[bytes], port: int, path: str, log: Path) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"server on port {port} did not start:\n{log.read_text()[-2000:]}")
        time.sleep(0.1)


def _commands(name: str, tmp: Path, port: int) -> tuple[list[str], list[str], dict[str, str], str]:
    """(setup command, serve command, environment, no-op path) for one stack."""
    py = sys.executable
    if name == "silentauth":
        env = {
            "SILENTAUTH_DATABASE_URL": f"sqlite:///{tmp / 'silentauth.db'}",
            "SILENTAUTH_SECRET_KEY": SECRET,
            "SILENTAUTH_RATE_LIMIT_LOGIN": "off",
            "SILENTAUTH_RATE_LIMIT_REFRESH": "off",
            "SILENTAUTH_LOG_LEVEL": "warning",
        }
        setup = [py, "-m", "silentauth", "users", "add", USERNAME, "--password-stdin"]
        serve = [py, "-m", "silentauth", "serve", "--port", str(port)]
        return setup, serve, env, "/healthz"
    if name == "silentauth-granian":
        setup, _, env, noop = _commands("silentauth", tmp, port)
        env["SILENTAUTH_DATABASE_URL"] = f"sqlite:///{tmp / 'silentauth-granian.db'}"
        serve = [shutil.which("granian") or "granian", "--interface", "asgi", "--factory", "--workers", "1"]
        serve += ["--host", "127.0.0.1", "--port", str(port), "--no-access-log", "--log-level", "warning"]
        return setup, serve + ["silentauth.server.app:create_app"], env, noop
    if name in NODE_STACKS:
        serve = [str(NODE), str(OIDC_DIR / "server.mjs"), str(port), NODE_STACKS[name]]
        return [], serve, {"BENCH_SESSIONS": "256"}, "/noop"
    module = {
        "simplejwt": "bench.peers.simplejwt_app:application",
        "flask-jwt-extended": "bench.peers.flask_app:app",
        "django-oauth-toolkit": "bench.peers.dot_app:application",
    }[name]
    env = {"BENCH_DB": str(tmp / f"{name}.db")}
    setup = [py, "-m", module.partition(":")[0], USERNAME, PASSWORD]
    granian = shutil.which("granian") or "granian"
    serve = [granian, "--interface", "wsgi", "--workers", "1", "--host", "127.0.0.1", "--port", str(port)]
    serve += ["--no-access-log", "--log-level", "warning", module]
    return setup, serve, env, "/noop"


def available(names: tuple[str, ...] = DEFAULT_STACKS) -> tuple[tuple[str, ...], list[str]]:
    """The stacks whose packages are installed, and a note for each one that is not."""
    import importlib.util

    ok, notes = [], []
    for name in names:
        if name in NODE_STACKS:
            if not (NODE.exists() and (OIDC_DIR / "node_modules" / "oidc-provider").is_dir()):
                notes.append(f"{name} skipped: no Node.js/oidc-provider in bench/peers/oidc (cd bench/peers/oidc && npm ci)")
            else:
                ok.append(name)
            continue
        missing = [m for m in NEEDS[name] if importlib.util.find_spec(m) is None]
        if missing:
            notes.append(f"{name} skipped: pip install {' '.join(missing)} (bench extras)")
        else:
            ok.append(name)
    return tuple(ok), notes



def stop(procs: Iterable[subprocess.Popen[bytes]], timeout: float = 10) -> None:
    """Terminate every server, then wait for each (killing one that outlives ``timeout``)."""
    procs = list(procs)
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

@contextlib.contextmanager
def running(names: tuple[str, ...] = DEFAULT_STACKS) -> Iterator[dict[str, Stack]]:
    """Start every stack, yield them by name, stop them all afterwards."""
    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory(prefix="silentauth-bench-") as tmpdir:
        tmp = Path(tmpdir)
        try:
            stacks: dict[str, Stack] = {}
            for name in names:
                port = free_port()
                setup, serve, extra, noop = _commands(name, tmp, port)
                env = _env(extra)
                if setup:
                    subprocess.run(setup, input=f"{PASSWORD}\n".encode(), env=env, cwd=ROOT, check=True, capture_output=True)
                log = tmp / f"{name}.log"
                with log.open("wb") as out:
                    proc = subprocess.Popen(serve, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, preexec_fn=pin(SERVER_CPU))
                procs.append(proc)
                _wait(proc, port, noop, log)
                served = SERVED_BY[name]
                stacks[name] = Stack(name, port, served, proc.pid)
            yield stacks
        finally:
            stop(procs)
