"""``silentauth serve``: bind, open the store, announce; drain on SIGTERM; N workers.

The order is what an operator (or an orchestrator) relies on:

1. The listening socket is bound first, in this process. A port in use is one
   line and exit 3, before anything else happens.
2. The store is opened and the keys and revocations are loaded. Any failure is
   one line naming the cause: exit 2 for a setting (:class:`ConfigError`),
   exit 3 for the environment (a store that refuses, a path that cannot be
   written). No traceback: the cause is the message.
3. Only then ``serving on …`` is printed, so a script that waits for that line
   can send requests at once.

SIGTERM (and Ctrl-C) drains: the socket stops accepting, requests in flight
finish within ``DRAIN_TIMEOUT`` (uvicorn's graceful shutdown), then the store
closes. A refresh is answered only after its rotation committed, so a refresh
cut off by the drain gets no answer and its client retries within the reuse
grace (the same successor token comes back).

With ``WORKERS`` > 1 this process binds the socket, opens the store once (so
migrations, the first key and the demo user are made once), then forks the
workers, which accept on the shared socket. Each worker has its own batcher,
revocation set and per-process counters, exactly as separate instances on
one store would; SQLite in WAL mode serializes their writes. This process
supervises: it forwards SIGTERM/SIGINT, and if a worker dies it stops the
others and exits 1, leaving restarts to the service manager (systemd,
Kubernetes) rather than hiding a crash loop behind a half-sized pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
from collections.abc import Callable
from types import FrameType

import uvicorn

from silentauth.errors import ConfigError, StoreError
from silentauth.settings import Settings

EXIT_SETTINGS = 2
EXIT_ENVIRONMENT = 3


class StartupFailure(Exception):
    """Why the service cannot start: one line and the exit status."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def classify(exc: BaseException) -> StartupFailure | None:
    """The one-line form of an expected start-up failure; ``None`` for a bug."""
    if isinstance(exc, StartupFailure):
        return exc
    if isinstance(exc, ConfigError):
        return StartupFailure(EXIT_SETTINGS, str(exc))
    if isinstance(exc, StoreError):
        return StartupFailure(EXIT_ENVIRONMENT, str(exc))
    if isinstance(exc, OSError):
        where = f": {exc.filename}" if exc.filename else ""
        return StartupFailure(EXIT_ENVIRONMENT, f"{exc.strerror or exc}{where}")
    return None


def bind(settings: Settings) -> socket.socket:
    """The listening socket for HOST:PORT, or :class:`StartupFailure` (exit 3)."""
    host, port = settings.host, settings.port
    try:
        info = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, address = info[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
            sock.listen(4096)
        except OSError:
            sock.close()
            raise
    except OSError as exc:
        raise StartupFailure(EXIT_ENVIRONMENT, f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock


def announcement(settings: Settings) -> str:
    """The ``serving on …`` line, printed once the service can answer."""
    workers = f", {settings.workers} workers" if settings.workers > 1 else ""
    demo = ", demo user demo/demo" if settings.demo else ""
    return f"silentauth: serving on http://{settings.host}:{settings.port}/ (store {settings.database_url}{demo}{workers})"


class _Server(uvicorn.Server):
    """uvicorn's server, telling its caller when it accepts connections."""

    def __init__(self, config: uvicorn.Config, on_ready: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_ready = on_ready

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            self._on_ready()


def _config(app: object, settings: Settings) -> uvicorn.Config:
    from silentauth.server.token_protocol import protocol_for

    return uvicorn.Config(
        app,  # type: ignore[arg-type]
        http=protocol_for(app),
        log_level=settings.log_level,
        access_log=settings.access_log,
        proxy_headers=False,
        server_header=False,
        timeout_keep_alive=30,
        limit_concurrency=4096,
        timeout_graceful_shutdown=int(settings.drain_timeout),
    )


def _quiet(signum: int, frame: FrameType | None) -> None:
    """uvicorn re-raises the signal it drained on; by then there is nothing left to do."""


def run_worker(settings: Settings, sock: socket.socket, on_ready: Callable[[], None]) -> None:
    """Build the app, open the store, serve on ``sock`` until SIGTERM; :class:`StartupFailure` if it cannot start."""
    from silentauth.server.app import create_app

    try:
        app = create_app(settings)
    except Exception as exc:
        raise classify(exc) or exc from None
    config = _config(app, settings)
    runtime = app.state.runtime

    async def main() -> None:
        try:
            await runtime.start()
        except Exception as exc:
            with contextlib.suppress(Exception):
                await runtime.store.close()
            raise classify(exc) or exc from None
        # Only now: a signal during the start must stop the process, not be swallowed.
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, _quiet)
        await _Server(config, on_ready).serve(sockets=[sock])

    with asyncio.Runner(loop_factory=config.get_loop_factory()) as runner:
        runner.run(main())


def preflight(settings: Settings) -> None:
    """Open the store once: migrate, make the first key, seed the demo user (workers > 1)."""
    from silentauth.server.app import create_app

    async def main() -> None:
        runtime = create_app(settings).state.runtime
        try:
            await runtime.start()
        finally:
            with contextlib.suppress(Exception):
                await runtime.store.close()

    try:
        asyncio.run(main())
    except Exception as exc:
        raise classify(exc) or exc from None


def serve(settings: Settings) -> int:
    """Run the service in the foreground; the exit status."""
    try:
        sock = bind(settings)
        if settings.workers == 1:
            run_worker(settings, sock, lambda: print(announcement(settings), file=sys.stderr, flush=True))
            return 0
        preflight(settings)
    except StartupFailure as failure:
        print(f"silentauth: {failure.message}", file=sys.stderr)
        return failure.code
    return Supervisor(settings, sock).run()


class Supervisor:
    """Forks the workers, reports the first failure, forwards signals, replaces the dead."""

    def __init__(self, settings: Settings, sock: socket.socket) -> None:
        self.settings = settings
        self.sock = sock
        self.workers: set[int] = set()
        self.stopping = False
        self._reports_r, self._reports_w = os.pipe()

    def _fork(self) -> int:
        pid = os.fork()
        if pid:
            self.workers.add(pid)
            return pid
        # The worker: report ready or the failure through the pipe, never return.
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, signal.SIG_DFL)  # not the supervisor's, which signals "siblings"
        self.workers.clear()
        code = 0
        os.close(self._reports_r)
        try:
            run_worker(self.settings, self.sock, self._report_ready)
        except StartupFailure as failure:
            line = f"F{failure.code} {failure.message}".replace("\n", " ")[:3000]
            os.write(self._reports_w, line.encode() + b"\n")
            code = failure.code
        except BaseException:
            import traceback

            traceback.print_exc()
            code = 1
        finally:
            sys.stderr.flush()
            os._exit(code)

    def _report_ready(self) -> None:
        os.write(self._reports_w, b"R\n")

    def _signal(self, signum: int, frame: FrameType | None) -> None:
        self.stopping = True
        for pid in self.workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    def run(self) -> int:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._signal)
        for _ in range(self.settings.workers):
            self._fork()
        self.sock.close()  # the workers hold it
        os.close(self._reports_w)  # so that the pipe ends when every worker has gone
        return self._wait_ready()

    def _wait_ready(self) -> int:
        ready = 0
        reports = os.fdopen(self._reports_r, "rb", buffering=0)
        buffer = b""
        while ready < self.settings.workers and not self.stopping:
            try:
                chunk = reports.read(4096)
            except InterruptedError:
                continue
            if not chunk:
                break
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                if line == b"R":
                    ready += 1
                elif line.startswith(b"F"):
                    code, _, message = line[1:].decode(errors="replace").partition(" ")
                    print(f"silentauth: {message}", file=sys.stderr)
                    self._signal(signal.SIGTERM, None)
                    self._wait_all()
                    return int(code)
        if ready == self.settings.workers:
            print(announcement(self.settings), file=sys.stderr, flush=True)
        return self._wait_all()

    def _wait_all(self) -> int:
        code = 0
        while self.workers:
            try:
                pid, status = os.wait()
            except ChildProcessError:
                break
            except InterruptedError:
                continue
            self.workers.discard(pid)
            exit_code = os.waitstatus_to_exitcode(status)
            if not self.stopping:
                print(f"silentauth: worker {pid} exited ({exit_code}); stopping the others", file=sys.stderr)
                self._signal(signal.SIGTERM, None)
                code = 1
        return code
