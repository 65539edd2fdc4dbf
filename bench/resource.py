"""What the resource kit costs: a protected route vs the same route unprotected.

For each framework one server serves ``/open`` and ``/protected`` (the same
JSON; :mod:`bench.protected`), with silentauth's adapter on the second:

- ``starlette``: Starlette with :class:`BearerAuthMiddleware`, the route
  calling :func:`require_auth`;
- ``fastapi``: FastAPI with the same middleware, ``/protected`` on an
  ``APIRouter(route_class=BearerRoute)`` and ``/open`` on a plain router;
  both served by uvicorn (1 process), as their docs recommend;
- ``drf``: Django REST framework with ``SilentAuthAuthentication``;
- ``flask``: the ``SilentAuth`` extension's ``required()`` decorator;
  both WSGI apps under granian ``--interface wsgi --workers 1``, as the peers
  of ``bench/peers`` are.

Every adapter is built with ``from_issuer`` against a real token service
(``silentauth serve``, SQLite): keys from its JWKS, its revocation feed
followed, exactly as the README wires a third-party API. Each connection
on the protected route presents its own access token (one login each); the
open route gets no token, as a public route of the same API would, so the
ratio charges the whole adapter (middleware verification included) to the
protected route. Before the load, a probe checks that each protected route
really refuses a missing, forged or revoked token.

The load generator (:mod:`bench.loadgen`) drives all targets in
interleaved rounds; servers are pinned to CPU 0, the generator to CPU 1.
Two ratios per framework: by rate (requests/s protected over unprotected) and
per core (CPU time per request, unprotected over protected, from ``/proc``:
steadier on a shared machine), each the ratio of the two medians; and the same
two paired (``ratio_paired``, ``ratio_per_core_paired``: the median of the
rounds' own ratios, which cancels load drifting between rounds). The goal is
``>= 0.85``. Before the load,
:mod:`bench.app_cost` gives a third, steadiest view: the apps' own CPU time
per request called in-process (no HTTP server), whose difference is the
adapter's cost in microseconds.

``run()`` returns a dict and prints nothing.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.loadgen import PASSWORD, USERNAME
from bench.protected import ISSUER_ENV
from bench.servers import (
    LOADGEN_CPU,
    ROOT,
    SERVER_CPU,
    _env,
    free_port,
    pin,
    running,
    stop,
)

TARGET = 0.85
FRAMEWORKS = ("starlette", "fastapi", "drf", "flask")
SERVED_BY = {
    "starlette": "Starlette BearerAuthMiddleware + require_auth, uvicorn 1 process",
    "fastapi": "FastAPI BearerAuthMiddleware + BearerRoute router, uvicorn 1 process",
    "drf": "DRF SilentAuthAuthentication, granian wsgi 1 worker",
    "flask": "Flask SilentAuth.required(), granian wsgi 1 worker",
}
NEEDS = {
    "starlette": ("starlette", "uvicorn"),
    "fastapi": ("fastapi", "uvicorn"),
    "drf": ("django", "rest_framework", "granian"),
    "flask": ("flask", "granian"),
}
REVOCATION_DEADLINE = 5.0  # seconds for a revoked session to reach each API (the feed polls every 1 s)


def _serve_command(name: str, port: int) -> list[str]:
    where = ["--host", "127.0.0.1", "--port", str(port)]
    if name in ("starlette", "fastapi"):
        return [sys.executable, "-m", "uvicorn", "--factory", f"bench.protected.{name}_app:create_app",
                *where, "--workers", "1", "--log-level", "warning", "--no-access-log",
                # Connections idle while the other targets run: uvicorn's 5 s default would close them.
                "--timeout-keep-alive", "600"]
    module = {"drf": "bench.protected.drf_app:application", "flask": "bench.protected.flask_app:app"}[name]
    granian = shutil.which("granian") or "granian"
    return [granian, "--interface", "wsgi", "--workers", "1", *where, "--no-access-log", "--log-level", "warning", module]


def available(names: tuple[str, ...] = FRAMEWORKS) -> tuple[tuple[str, ...], list[str]]:
    """The frameworks whose packages are installed, and a note for each missing one."""
    import importlib.util

    ok, notes = [], []
    for name in names:
        missing = [m for m in NEEDS[name] if importlib.util.find_spec(m) is None]
        if missing:
            notes.append(f"{name} skipped: pip install {' '.join(missing)}")
        else:
            ok.append(name)
    return tuple(ok), notes


def _http(method: str, url: str, headers: dict[str, str] | None = None, data: bytes | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return int(r.status), r.read()
    except urllib.error.HTTPError as e:
        return int(e.code), e.read()


def _login(issuer: str) -> dict[str, Any]:
    form = {"grant_type": "password", "username": USERNAME, "password": PASSWORD}
    status, body = _http("POST", f"{issuer}/auth/token", {"Content-Type": "application/x-www-form-urlencoded"},
                         urllib.parse.urlencode(form).encode())
    if status != 200:
        raise RuntimeError(f"bench login failed with {status}: {body[:200]!r}")
    grant: dict[str, Any] = json.loads(body)
    # A first token's lifetime is spread (FIRST_TOKEN_SPREAD) down to a tenth of the
    # TTL, shorter than a run; a refreshed one gets the whole TTL (less 10 % jitter).
    form = {"grant_type": "refresh_token", "refresh_token": grant["refresh_token"]}
    status, body = _http("POST", f"{issuer}/auth/token", {"Content-Type": "application/x-www-form-urlencoded"},
                         urllib.parse.urlencode(form).encode())
    if status != 200:
        raise RuntimeError(f"bench refresh failed with {status}: {body[:200]!r}")
    renewed: dict[str, Any] = json.loads(body)
    return renewed


def _revoke(issuer: str, refresh_token: str) -> None:
    form = urllib.parse.urlencode({"token": refresh_token, "token_type_hint": "refresh_token"}).encode()
    status, body = _http("POST", f"{issuer}/auth/revoke", {"Content-Type": "application/x-www-form-urlencoded"}, form)
    if status != 200:
        raise RuntimeError(f"bench revoke failed with {status}: {body[:200]!r}")


@contextlib.contextmanager
def _apis(names: tuple[str, ...], issuer: str, tmp: Path) -> Iterator[dict[str, tuple[int, int]]]:
    """Start one server per framework; yields name -> (port, pid)."""
    procs: list[subprocess.Popen[bytes]] = []
    try:
        out: dict[str, tuple[int, int]] = {}
        for name in names:
            port = free_port()
            log = tmp / f"resource-{name}.log"
            with log.open("wb") as sink:
                proc = subprocess.Popen(_serve_command(name, port), env=_env({ISSUER_ENV: issuer}), cwd=ROOT,
                                        stdout=sink, stderr=subprocess.STDOUT, preexec_fn=pin(SERVER_CPU))
            procs.append(proc)
            deadline = time.monotonic() + 60
            while _probe_status(port, "/open") != 200:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{name} did not start:\n{log.read_text()[-2000:]}")
                time.sleep(0.1)
            out[name] = (port, proc.pid)
        yield out
    finally:
        stop(procs)


def _probe_status(port: int, path: str, token: str | None = None) -> int | None:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    try:
        return _http("GET", f"http://127.0.0.1:{port}{path}", headers)[0]
    except OSError:
        return None


def _forged(token: str) -> str:
    """``token`` with one signature character changed (still base64url)."""
    head, _, sig = token.rpartition(".")
    return f"{head}.{sig[:10]}{'A' if sig[10] != 'A' else 'B'}{sig[11:]}"


def _probe(port: int, good: str, revoked: str) -> dict[str, int | None]:
    """What the protected route answers to each kind of caller (before any load)."""
    seen: dict[str, int | None] = {
        "open": _probe_status(port, "/open"),
        "valid": _probe_status(port, "/protected", good),
        "no_token": _probe_status(port, "/protected"),
        "empty_bearer": _probe_status(port, "/protected", ""),
        "forged": _probe_status(port, "/protected", _forged(good)),
    }
    deadline = time.monotonic() + REVOCATION_DEADLINE
    while (status := _probe_status(port, "/protected", revoked)) == 200 and time.monotonic() < deadline:
        time.sleep(0.1)
    seen["revoked"] = status
    return seen


def _servers_state(apis: dict[str, tuple[int, int]], tmp: Path) -> str:
    """Which API servers still run, and the end of each log: why a load run could not connect."""
    lines = []
    for name, (port, pid) in apis.items():
        try:  # a server that exited is a zombie until stop() reaps it: read its state
            state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
        except OSError:
            state = "?"
        alive = "GONE" if state in ("Z", "X", "?") else "running"
        log = tmp / f"resource-{name}.log"
        tail = log.read_text(errors="replace")[-500:] if log.exists() else ""
        lines.append(f"{name} (port {port}, pid {pid}): {alive}\n{tail}")
    return "\n" + "\n".join(lines)


def _app_cost(names: tuple[str, ...], issuer: str, token: str, requests: int, rounds: int) -> dict[str, Any]:
    """:mod:`bench.app_cost` in a subprocess on the servers' CPU (idle meanwhile)."""
    spec = {"issuer": issuer, "token": token, "frameworks": list(names), "requests": requests, "rounds": rounds}
    proc = subprocess.run([sys.executable, "-m", "bench.app_cost", json.dumps(spec)], env=_env({}), cwd=ROOT,
                          capture_output=True, check=False, preexec_fn=pin(SERVER_CPU))
    if proc.returncode != 0:
        raise RuntimeError(f"in-process measurement failed:\n{proc.stderr.decode()[-2000:]}")
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _summary(open_t: dict[str, Any], prot_t: dict[str, Any]) -> dict[str, Any]:
    o_rps, p_rps = _median(open_t["rps"]), _median(prot_t["rps"])
    o_cpu, p_cpu = _median(open_t["cpu_us_per_request"]), _median(prot_t["cpu_us_per_request"])
    ratio = p_rps / o_rps if o_rps and p_rps is not None else 0.0
    per_core = o_cpu / p_cpu if o_cpu and p_cpu else None
    # Paired: the median of each round's own ratio. The two slices of a round are
    # seconds apart, so load that drifts between rounds cancels out of each pair.
    paired = _median([p / o for o, p in zip(open_t["rps"], prot_t["rps"], strict=True) if o])
    paired_core = _median([o / p for o, p in zip(open_t["cpu_us_per_request"], prot_t["cpu_us_per_request"],
                                                 strict=True) if p])
    return {
        "unprotected_rps": round(o_rps or 0.0, 1),
        "protected_rps": round(p_rps or 0.0, 1),
        "ratio": round(ratio, 3),
        "unprotected_cpu_us": round(o_cpu, 1) if o_cpu is not None else None,
        "protected_cpu_us": round(p_cpu, 1) if p_cpu is not None else None,
        "ratio_per_core": round(per_core, 3) if per_core is not None else None,
        "ratio_paired": round(paired, 3) if paired is not None else None,
        "ratio_per_core_paired": round(paired_core, 3) if paired_core is not None else None,
        "p50_ms": {"unprotected": open_t["p50_ms"], "protected": prot_t["p50_ms"]},
        "errors": {"unprotected": open_t["errors"], "protected": prot_t["errors"]},
        "samples": {"unprotected": open_t["rps"], "protected": prot_t["rps"]},
        "cpu_samples": {"unprotected": open_t["cpu_us_per_request"], "protected": prot_t["cpu_us_per_request"]},
    }


def run(
    seconds: float = 2.0, rounds: int = 8, connections: int = 32, warmup: float = 1.0,
    frameworks: tuple[str, ...] = FRAMEWORKS, anonymous_load: bool = False,
    app_requests: int = 2000, app_rounds: int = 7,
) -> dict[str, Any]:
    """Measure every installed framework; returns per-framework rates, CPU, ratios and probes.

    ``anonymous_load`` adds, per framework, a target loading the protected route
    without a token (its requests must all be refused: the smoke test checks it).
    """
    names, notes = available(frameworks)
    result: dict[str, Any] = {"name": "resource", "target": TARGET, "connections": connections,
                              "seconds": seconds, "rounds": rounds, "skipped": notes or None}
    if not result["skipped"]:
        del result["skipped"]
    if not names:
        result["skipped"] = "; ".join(notes)
        return result
    with running(("silentauth",)) as stacks, contextlib.ExitStack() as es:
        issuer = f"http://127.0.0.1:{stacks['silentauth'].port}"
        grants = [_login(issuer) for _ in range(connections + 1)]
        doomed = grants.pop()  # its session is revoked: every API must refuse its token
        _revoke(issuer, doomed["refresh_token"])
        tokens = [g["access_token"] for g in grants]
        tmp = Path(es.enter_context(tempfile.TemporaryDirectory(prefix="silentauth-bench-resource-")))
        apis = es.enter_context(_apis(names, issuer, tmp))
        probes = {name: _probe(port, tokens[0], doomed["access_token"]) for name, (port, _) in apis.items()}
        in_process = _app_cost(names, issuer, tokens[0], app_requests, app_rounds)
        targets = []
        for name, (port, pid) in apis.items():
            for route in ("open", "protected"):
                targets.append({"stack": f"{name}/{route}", "port": port, "pid": pid, "mode": "get",
                                "path": f"/{route}", "tokens": tokens if route == "protected" else []})
            if anonymous_load:
                targets.append({"stack": f"{name}/anonymous", "port": port, "pid": pid, "mode": "get",
                                "path": "/protected", "tokens": []})
        spec = {"targets": targets, "connections": connections, "rounds": rounds, "slice": seconds, "warmup": warmup}
        proc = subprocess.run([sys.executable, "-m", "bench.loadgen", json.dumps(spec)], env=_env({}), cwd=ROOT,
                              capture_output=True, check=False, preexec_fn=pin(LOADGEN_CPU))
        if proc.returncode != 0:
            raise RuntimeError(f"load generator failed:\n{proc.stderr.decode()[-2000:]}{_servers_state(apis, tmp)}")
        by_stack = {t["stack"]: t for t in json.loads(proc.stdout)["targets"]}
    out: dict[str, Any] = {}
    for name in names:
        summary = _summary(by_stack[f"{name}/open"], by_stack[f"{name}/protected"])
        out[name] = {"served_by": SERVED_BY[name], "probe": probes[name], **summary, "in_process": in_process[name]}
        if anonymous_load:
            anonymous = by_stack[f"{name}/anonymous"]
            out[name]["anonymous"] = {"ok_rps": anonymous["rps"], "errors": anonymous["errors"]}
    result["frameworks"] = out
    result["ok"] = all(f["ratio"] >= TARGET for f in out.values())
    result["ok_per_core"] = all((f["ratio_per_core"] or 0) >= TARGET for f in out.values())
    result["ok_paired"] = all(min(f["ratio_paired"] or 0, f["ratio_per_core_paired"] or 0) >= TARGET
                              for f in out.values())
    return result
