"""A token service on a fixed loopback port that can be stopped and started again.

The same settings (SQLite file, secret key) survive a restart, as in
production: sessions and signing keys persist, open connections are cut.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import uvicorn

from silentauth.server.app import create_app
from silentauth.server.token_protocol import protocol_for
from tests.conftest import FAST_PASSWORDS, free_port, make_settings, seed_users


class RestartableServer:
    """``start()``/``stop()`` a uvicorn running the token service on one port."""

    def __init__(self, tmp_path: Path, users: dict[str, str], clock: Any = None, **overrides: Any) -> None:
        self.settings = make_settings(tmp_path, **overrides)
        self.clock = clock
        # seed_users runs asyncio.run(): never on a thread that already runs a loop.
        with ThreadPoolExecutor(1) as pool:
            pool.submit(seed_users, self.settings, users).result()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.app: Any = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        kwargs: dict[str, Any] = {"passwords": FAST_PASSWORDS}
        if self.clock is not None:
            kwargs["clock"] = self.clock
        self.app = create_app(self.settings, **kwargs)
        # As `silentauth serve`: open event streams are cut after the graceful timeout.
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=self.port, log_level="warning", timeout_graceful_shutdown=1,
            http=protocol_for(self.app),
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)

    @property
    def connections(self) -> set[Any]:
        """The server's open connections (HTTP and WebSocket protocols)."""
        return set(self._server.server_state.connections) if self._server else set()

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)
            self._server = None
