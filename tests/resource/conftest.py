"""Helpers for the resource-kit tests: the example app, the server's loop, tokens."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio
import httpx
from fastapi import FastAPI

from examples.fastapi_app import create_app as create_example_app
from silentauth.core.encoding import b64encode, dumps
from silentauth.core.keys import SigningKey
from silentauth.resource import RemoteAuthenticator
from tests.conftest import LiveServer

T = TypeVar("T")


async def start_live(factory: Callable[..., LiveServer], **options: Any) -> LiveServer:
    """``live_server_factory`` from an async test (it runs its own event loop)."""
    return await anyio.to_thread.run_sync(lambda: factory(**options))


async def on_server(live: LiveServer, coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on the live server's own event loop (its store lives there)."""
    loop = live.server.servers[0].get_loop()
    return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, loop))


async def password_grant(
    client: httpx.AsyncClient,
    base: str,
    name: str = "alice",
    password: str = "secret",
    **extra: str,
) -> dict[str, Any]:
    r = await client.post(
        f"{base}/auth/token",
        data={
            "grant_type": "password",
            "username": name,
            "password": password,
            **extra,
        },
    )
    assert r.status_code == 200, r.text
    return dict(r.json())


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def sign(key: SigningKey, header: dict[str, Any], claims: dict[str, Any]) -> str:
    """A JWT with any header, signed by ``key`` (ES256): for hostile-token tests."""
    signing_input = f"{b64encode(dumps(header))}.{b64encode(dumps(claims))}"
    return f"{signing_input}.{b64encode(key.sign(signing_input.encode()))}"


@dataclass
class Example:
    """The example FastAPI app, in-process, and the authenticator inside it."""

    app: FastAPI
    client: httpx.AsyncClient
    auth: RemoteAuthenticator


def authenticator_of(app: FastAPI) -> RemoteAuthenticator:
    for mw in app.user_middleware:
        auth = mw.kwargs.get("authenticator")
        if isinstance(auth, RemoteAuthenticator):
            return auth
    raise AssertionError("no RemoteAuthenticator on this app")


@contextlib.asynccontextmanager
async def example_app(
    issuer: str, lifespan: bool = True, **options: Any
) -> AsyncIterator[Example]:
    """Start ``examples/fastapi_app.py`` (lifespan included) and a client for it."""
    app = create_example_app(issuer, **options)
    auth = authenticator_of(app)
    transport = httpx.ASGITransport(app=app)
    async with contextlib.AsyncExitStack() as stack:
        if lifespan:
            await stack.enter_async_context(app.router.lifespan_context(app))
        client = await stack.enter_async_context(
            httpx.AsyncClient(transport=transport, base_url="http://example")
        )
        yield Example(app, client, auth)
    await auth.aclose()
