"""Refreshes through the served protocol and the real app, in-process: the ASGI path against the protocol's own.

``python -m bench.protocol_refresh [--rounds 6] [--width 32] [--each 60]`` builds the
real app (SQLite file in WAL mode, rate limits off) and drives ``width`` keep-alive
connections, each a chain of refreshes, through the protocol ``silentauth serve``
uses, on one event loop. No sockets: a transport keeps what it is given, so what
is measured is Python (protocol, app, store, signature), not the kernel. Rounds
alternate between uvicorn's ASGI path (:class:`BoundedHttpToolsProtocol`: scope,
cycle, middleware, :class:`TokenFastPath`) and :class:`TokenProtocol` (the route
answered inside the protocol), and it prints the CPU time per refresh of each.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from email.utils import formatdate
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import uvicorn
from uvicorn.server import ServerState

from bench.inprocess import bench_app
from silentauth.server.token_protocol import protocol_for
from silentauth.server.uvicorn_protocol import BoundedHttpToolsProtocol


class Transport(asyncio.Transport):
    """Keeps what the protocol writes; resolves ``answer`` when one whole answer is in."""

    def __init__(self, port: int) -> None:
        super().__init__()
        self.port = port
        self.data = b""
        self.answer: asyncio.Future[bytes] | None = None
        self.writes = 0

    def write(self, data: Any) -> None:
        self.writes += 1
        self.data += bytes(data)
        head, sep, body = self.data.partition(b"\r\n\r\n")
        if not sep:
            return
        length = int(head.lower().split(b"content-length: ", 1)[1].split(b"\r\n", 1)[0])
        if len(body) >= length and self.answer is not None:
            self.answer.set_result(body[:length])
            self.data = body[length:]

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", self.port), "sockname": ("127.0.0.1", 8000)}.get(name, default)

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def _request(token: str) -> bytes:
    form = urlencode({"grant_type": "refresh_token", "refresh_token": token}).encode()
    return (
        b"POST /auth/token HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nUser-Agent: bench\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n%s" % (len(form), form)
    )


async def _round(app: Any, protocol_class: type[Any], tokens: list[str], each: int) -> tuple[float, float]:
    """(CPU µs per refresh, writes per answer) of ``len(tokens)`` chains of ``each`` refreshes."""
    config = uvicorn.Config(
        app, http=protocol_class, access_log=False, server_header=False, proxy_headers=False, log_level="warning",
        lifespan="off",
    )
    config.load()
    state = ServerState()
    state.default_headers = [(b"date", formatdate(time.time(), usegmt=True).encode())]
    loop = asyncio.get_running_loop()
    links = []
    for i in range(len(tokens)):
        transport = Transport(40000 + i)
        protocol = protocol_class(config=config, server_state=state, app_state={}, _loop=loop)
        protocol.connection_made(transport)
        links.append((protocol, transport))

    async def chain(i: int) -> None:
        protocol, transport = links[i]
        for _ in range(each):
            transport.answer = loop.create_future()
            protocol.data_received(_request(tokens[i]))
            body = await transport.answer
            tokens[i] = json.loads(body)["refresh_token"]

    t0 = time.process_time()
    await asyncio.gather(*(chain(i) for i in range(len(tokens))))
    cpu = (time.process_time() - t0) / (len(tokens) * each) * 1e6
    writes = sum(t.writes for _, t in links) / (len(tokens) * each)
    for protocol, _ in links:
        protocol.connection_lost(None)
    return cpu, writes


async def measure(rounds: int, width: int, each: int) -> dict[str, list[float]]:
    with tempfile.TemporaryDirectory(prefix="silentauth-protocol-") as tmp:
        app = bench_app(Path(tmp))
        paths = {"asgi": BoundedHttpToolsProtocol, "token protocol": protocol_for(app)}
        results: dict[str, list[float]] = {name: [] for name in paths}
        async with app.router.lifespan_context(app):
            rt = app.state.runtime
            await rt.ensure_user("bench", "pw")
            tokens = [(await rt.service.login("bench", "pw")).refresh_token for _ in range(width)]
            for cls in paths.values():  # warm-up
                await _round(app, cls, tokens, 10)
            for r in range(rounds):
                order = list(paths.items()) if r % 2 == 0 else list(reversed(paths.items()))
                for name, cls in order:
                    cpu, writes = await _round(app, cls, tokens, each)
                    results[name].append(cpu)
                    assert writes == 1.0, (name, writes)
        return results


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.protocol_refresh", description=__doc__)
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--width", type=int, default=32)
    p.add_argument("--each", type=int, default=60)
    args = p.parse_args(argv)
    import uvloop

    results = uvloop.run(measure(args.rounds, args.width, args.each))
    for name, values in results.items():
        rounds = ", ".join(f"{v:.1f}" for v in sorted(values))
        print(f"{name:15} median {statistics.median(values):6.1f} us CPU/refresh (rounds, sorted: {rounds})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
