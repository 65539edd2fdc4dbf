"""Shared fixtures: real SQLite files, the real ASGI app, a real server on loopback.

``SILENTAUTH_REQUIRE_SERVICES=1`` (set by ``.ci/run``) turns every "binary
missing" skip into a failure, so CI cannot pass by skipping.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import stat
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette

from silentauth.clock import FakeClock
from silentauth.core.passwords import Passwords
from silentauth.server.app import create_app
from silentauth.server.runtime import Runtime
from silentauth.server.token_protocol import protocol_for
from silentauth.settings import Settings

T = TypeVar("T")
REQUIRE_SERVICES = os.environ.get("SILENTAUTH_REQUIRE_SERVICES") == "1"

# Argon2id at a cost tests can afford; production defaults are tested separately.
FAST_PASSWORDS = Passwords(time_cost=1, memory_cost=1024, parallelism=1)


def need_binary(name: str, *candidates: str) -> str:
    """Path of a binary, or skip (fail under SILENTAUTH_REQUIRE_SERVICES=1)."""
    for cand in (name, *candidates):
        path = shutil.which(cand) or (cand if os.path.isfile(cand) and os.access(cand, os.X_OK) else None)
        if path:
            return path
    missing(f"{name} is not installed (apt-get install it, or see .ci/run)")


def missing(message: str) -> NoReturn:
    """Skip for a missing part of the environment (fail under SILENTAUTH_REQUIRE_SERVICES=1)."""
    if REQUIRE_SERVICES:
        pytest.fail(f"SILENTAUTH_REQUIRE_SERVICES=1 but {message}")
    pytest.skip(message)


def mode(path: Path) -> int:
    """A file's permission bits."""
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def umask() -> Iterator[None]:
    """Restore the process umask after a test that sets it."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": f"sqlite:///{tmp_path / 'silentauth.db'}",
        "secret_key": "test-secret-key-with-at-least-32-bytes!!",
        "cookie_secure": False,
        "rate_limit_login": None,
        "rate_limit_refresh": None,
        "ttl_jitter": 0.0,
        "first_token_spread": 0.0,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(time.time())


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@dataclass
class Service:
    """A running app: the HTTP client, the runtime behind it, and its clock."""

    app: Starlette
    runtime: Runtime
    client: httpx.AsyncClient
    clock: Any

    async def add_user(self, name: str = "alice", password: str = "secret") -> None:
        await self.runtime.ensure_user(name, password)

    async def password_grant(self, name: str = "alice", password: str = "secret", **extra: str) -> dict[str, Any]:
        r = await self.client.post(
            "/auth/token", data={"grant_type": "password", "username": name, "password": password, **extra}
        )
        assert r.status_code == 200, r.text
        return dict(r.json())

    async def refresh(self, token: str, **extra: str) -> httpx.Response:
        return await self.client.post(
            "/auth/token", data={"grant_type": "refresh_token", "refresh_token": token, **extra}
        )

    def metric(self, name: str, **labels: str) -> float:
        return metric_value(self.runtime.metrics.render().decode(), name, **labels)


def metric_value(text: str, name: str, **labels: str) -> float:
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    key = f"{name}{{{want}}}" if want else name
    for line in text.splitlines():
        if line.startswith(key + " "):
            return float(line.split()[-1])
    return 0.0


ServiceFactory = Callable[..., Any]


@pytest.fixture
async def service_factory(tmp_path: Path, clock: FakeClock) -> AsyncIterator[ServiceFactory]:
    """Start apps in-process (httpx ASGITransport, lifespan run by hand)."""
    stack: list[Any] = []

    async def start(
        settings: Settings | None = None,
        client_ip: str = "127.0.0.1",
        app_options: dict[str, Any] | None = None,
        **overrides: Any,
    ) -> Service:
        s = settings or make_settings(tmp_path, **overrides)
        app = create_app(s, clock=clock, passwords=FAST_PASSWORDS, background=False, **(app_options or {}))
        ctx = app.router.lifespan_context(app)
        await ctx.__aenter__()
        stack.append(ctx)
        transport = httpx.ASGITransport(app=app, client=(client_ip, 50000))
        # Browsers send Origin on every POST; the cookie endpoints demand it.
        client = httpx.AsyncClient(
            transport=transport, base_url="http://testserver", headers={"Origin": "http://testserver"}
        )
        stack.append(client)
        return Service(app, app.state.runtime, client, clock)

    yield start
    for item in reversed(stack):
        if isinstance(item, httpx.AsyncClient):
            await item.aclose()
        else:
            await item.__aexit__(None, None, None)


@pytest.fixture
async def service(service_factory: ServiceFactory) -> Service:
    svc: Service = await service_factory()
    await svc.add_user()
    return svc


@dataclass
class LiveServer:
    """The token service on a real loopback port, run by uvicorn in a thread."""

    url: str
    app: Starlette
    server: uvicorn.Server

    @property
    def runtime(self) -> Runtime:
        rt: Runtime = self.app.state.runtime
        return rt

    def metric(self, name: str, **labels: str) -> float:
        return metric_value(httpx.get(f"{self.url}/metrics").text, name, **labels)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the server's own event loop (its store lives there), from a sync test."""
        loop = self.server.servers[0].get_loop()
        return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout=20)


def run_live(app: Starlette, port: int | None = None) -> Iterator[LiveServer]:
    port = port or free_port()
    # The HTTP protocol `silentauth serve` runs (the token route answered in it), for the service's own app.
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", limit_concurrency=4096, backlog=4096,
        http=protocol_for(app),
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield LiveServer(f"http://127.0.0.1:{port}", app, server)
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def seed_users(settings: Settings, users: dict[str, str]) -> None:
    """Create users through a separate store connection, before a server starts."""
    import asyncio
    import uuid

    from silentauth.core.ports import User
    from silentauth.errors import AlreadyExists
    from silentauth.stores.base import open_store

    async def run() -> None:
        store = open_store(settings.database_url)
        await store.open()
        try:
            for name, pw in users.items():
                try:
                    await store.add_user(User(str(uuid.uuid4()), name, FAST_PASSWORDS.hash(pw), time.time()))
                except AlreadyExists:
                    pass
        finally:
            await store.close()

    # A thread of its own, so async tests (which run inside a loop) can seed too.
    errors: list[BaseException] = []

    def target() -> None:
        try:
            asyncio.run(run())
        except BaseException as exc:  # re-raised in the caller's thread
            errors.append(exc)

    t = threading.Thread(target=target)
    t.start()
    t.join()
    if errors:
        raise errors[0]


@pytest.fixture
def live_server_factory(tmp_path: Path) -> Iterator[Callable[..., LiveServer]]:
    """Start real servers: ``live_server_factory(access_ttl=5, clock=...)``."""
    gens: list[Iterator[LiveServer]] = []

    def start(clock: Any = None, users: dict[str, str] | None = None, **overrides: Any) -> LiveServer:
        s = make_settings(tmp_path, **overrides)
        seed_users(s, {"alice": "secret"} if users is None else users)
        kwargs: dict[str, Any] = {"passwords": FAST_PASSWORDS}
        if clock is not None:
            kwargs["clock"] = clock
        # A ``port`` override is honoured, so a test can make ISSUER the server's own URL.
        gen = run_live(create_app(s, **kwargs), port=overrides.get("port"))
        live = next(gen)
        gens.append(gen)
        return live

    yield start
    for gen in gens:
        for _ in gen:
            pass


@pytest.fixture
def live_server(live_server_factory: Callable[..., LiveServer]) -> LiveServer:
    return live_server_factory()
