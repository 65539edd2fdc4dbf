"""A real TCP proxy on loopback that can lose the server's answers.

It forwards each connection to the upstream server byte for byte. While
``drop`` is above zero, the first bytes of an answer close the client's
connection instead of reaching it: the server has committed whatever the
request did (a rotation), and the client never hears of it — a killed app, a
tunnel, a closed lid, the read timeout of a flaky network.
"""

from __future__ import annotations

import asyncio
import threading
from urllib.parse import urlsplit


class LossyProxy:
    """``LossyProxy(upstream_url)``; ``url`` to send through; ``drop = n`` to lose n answers."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self._target = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.drop = 0
        self.dropped = 0
        self.forwarded = 0
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._server: asyncio.AbstractServer | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the proxy did not start")
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self._ready.set()
        self._loop.run_forever()

    def _take_drop(self) -> bool:
        with self._lock:
            if self.drop > 0:
                self.drop -= 1
                self.dropped += 1
                return True
            self.forwarded += 1
            return False

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        me = asyncio.current_task()
        assert me is not None
        self._handlers.add(me)
        try:
            await self._pipe(client_r, client_w)
        finally:
            self._handlers.discard(me)

    async def _pipe(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self._writers.add(client_w)
        try:
            server_r, server_w = await asyncio.open_connection(*self._target)
        except OSError:
            client_w.close()
            self._writers.discard(client_w)
            return
        self._writers.add(server_w)

        # The next bytes from the server start a new answer (kept-alive connections too).
        answer_starts = [False]

        async def upstream() -> None:
            while data := await client_r.read(65536):
                answer_starts[0] = True
                server_w.write(data)
                await server_w.drain()

        async def downstream() -> None:
            while data := await server_r.read(65536):
                if answer_starts[0]:
                    answer_starts[0] = False
                    if self._take_drop():
                        return  # the answer exists; the client will never see it
                client_w.write(data)
                await client_w.drain()

        up = asyncio.ensure_future(upstream())
        try:
            await downstream()
        except OSError:
            pass
        finally:
            up.cancel()
            await asyncio.gather(up, return_exceptions=True)
            for w in (client_w, server_w):
                w.close()
                self._writers.discard(w)

    def close(self) -> None:
        """Stop listening and end the proxy's thread."""

        async def stop() -> None:
            if self._server is not None:
                self._server.close()
            # Idle kept-alive connections still wait for bytes: closing their
            # sockets lets every handler run to its end (cancelling them is noisier).
            for w in list(self._writers):
                w.close()
            handlers = list(self._handlers)
            if handlers:
                await asyncio.wait(handlers, timeout=5)

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()
