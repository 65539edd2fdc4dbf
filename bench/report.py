"""Plain-text tables for ``python -m bench`` (no dependency beyond the stdlib)."""

from __future__ import annotations

from typing import Any


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))) for r in rows]
    return "\n".join(out)


def _f(x: Any, digits: int = 0) -> str:
    if x is None:
        return "-"
    return f"{x:,.{digits}f}"


def _rate(s: dict[str, Any]) -> str:
    return f"{_f(s['median'])} ({_f(s['min'])}-{_f(s['max'])})"


def _machine(doc: dict[str, Any]) -> str:
    m = doc["machine"]
    v = m["versions"]
    keys = ("python", "sqlite", "silentauth", "starlette", "uvicorn", "granian", "django",
            "djangorestframework-simplejwt", "django-oauth-toolkit", "flask", "flask-jwt-extended",
            "cryptography", "argon2-cffi", "node", "oidc-provider")
    return (
        f"machine: {m['nproc']} CPUs, {m['cpu']}; load average {m['load_average_at_start']} at start, "
        f"{m.get('load_average_at_end')} at end; {doc['started']}, {doc['wall_s']} s\n"
        "versions: " + ", ".join(f"{k} {v.get(k, '?')}" for k in keys)
    )


def _refresh(r: dict[str, Any]) -> str:
    rows = []
    for name, s in r["stacks"].items():
        rf, np = s["refresh"], s["noop"]
        rows.append([
            name, s["served_by"], _rate(rf), _f(rf["p50_ms"], 1), _f(rf["p99_ms"], 1), _f(rf["cpu_us"]),
            _f(rf["per_core"]), _rate(np), _f(np["per_core"]), _f(s["refresh_over_noop"], 2),
        ])
    for name, reason in r.get("skipped", {}).items():  # a missing toolchain stays in the table
        rows.append([name, f"skipped: {reason}", *["-"] * 8])
    head = ["stack", "served by", "refresh/s med (min-max)", "p50 ms", "p99 ms", "CPU us/refresh",
            "refresh/s per core", "no-op/s med (min-max)", "no-op/s per core", "refresh/no-op"]
    lines = [
        f"REFRESH (rotation on; {r['connections']} keep-alive connections, {r['rounds']} interleaved "
        f"rounds x {r['slice_s']} s per target; server pinned to CPU 0, load generator to CPU 1)",
        _table(head, rows),
    ]
    for pair, q in r["ratios"].items():
        lines.append(f"  {pair}: {_f(q['rate'], 2)}x by rate, {_f(q['per_core'], 2)}x per core")
    best = r["vs_best_peer"]
    verdict = "met" if r["ok"] else "NOT met"
    lines.append(
        f"  vs best peer ({r.get('best_peer') or '-'}): {_f(best['rate'], 2)}x by rate, "
        f"{_f(best['per_core'], 2)}x per core (goal >= {r['goal']:g}x per core: {verdict})"
    )
    return "\n".join(lines)


def _login(r: dict[str, Any]) -> str:
    rows = []
    for name, s in r["stacks"].items():
        lg = s["login"]
        rows.append([name, s["served_by"], _rate(lg), _f(lg["p50_ms"], 0), _f(lg["p99_ms"], 0),
                     _f((lg["cpu_us"] or 0) / 1000, 1), _f(lg["per_core"], 1)])
    head = ["stack", "served by", "logins/s med (min-max)", "p50 ms", "p99 ms", "CPU ms/login", "logins/s per core"]
    lines = [f"LOGIN (all stacks verify {r['password_hash']}; {r['connections']} connections, "
             f"{r['rounds']} rounds x {r['slice_s']} s)", _table(head, rows)]
    for pair, q in r["ratios"].items():
        lines.append(f"  {pair}: {_f(q['rate'], 2)}x by rate, {_f(q['per_core'], 2)}x per core")
    return "\n".join(lines)


def _in_app(ip: dict[str, Any]) -> str:
    text = f"{_f(ip['open_us'], 1)} / {_f(ip['protected_us'], 1)} (+{_f(ip['adapter_us'], 1)})"
    if "depends_us" in ip:  # FastAPI: the same route protected through Depends(CurrentPrincipal)
        text += f"; Depends {_f(ip['depends_us'], 1)}"
    return text


def _resource(r: dict[str, Any]) -> str:
    if "frameworks" not in r:
        return f"RESOURCE: skipped ({r.get('skipped')})"
    rows = []
    for name, f in r["frameworks"].items():
        s = f["samples"]
        probe = "ok" if f["probe"] == {"open": 200, "valid": 200, "no_token": 401, "empty_bearer": 400,
                                        "forged": 401, "revoked": 401} else str(f["probe"])
        rows.append([
            name, f["served_by"],
            f"{_f(f['unprotected_rps'])} ({_f(min(s['unprotected']))}-{_f(max(s['unprotected']))})",
            f"{_f(f['protected_rps'])} ({_f(min(s['protected']))}-{_f(max(s['protected']))})",
            _f(f["ratio"], 2), _f(f.get("ratio_paired"), 2),
            _f(f["unprotected_cpu_us"]), _f(f["protected_cpu_us"]),
            _f(f["ratio_per_core"], 2), _f(f.get("ratio_per_core_paired"), 2),
            _in_app(f["in_process"]), probe,
        ])
    head = ["framework", "served by", "open req/s med (min-max)", "protected req/s med (min-max)", "ratio",
            "paired", "CPU us open", "CPU us protected", "ratio per core", "paired per core",
            "in-app CPU us open / protected (adapter)", "refusals"]
    verdict = "met" if r["ok"] else "NOT met"
    per_core = "met" if r["ok_per_core"] else "NOT met"
    goal = f"  goal: every ratio >= {r['target']:g}: by rate {verdict}, per core {per_core}"
    if "ok_paired" in r:  # runs recorded before the paired ratios lack it
        goal += f", paired (both) {'met' if r['ok_paired'] else 'NOT met'}"
    return "\n".join([
        f"RESOURCE (the same route open and protected on one server; {r['connections']} connections, "
        f"{r['rounds']} interleaved rounds x {r['seconds']} s; server on CPU 0, load generator on CPU 1; "
        "paired = median of the rounds' own ratios)",
        _table(head, rows),
        goal,
    ])


def _workers(r: dict[str, Any]) -> str:
    rows = [[name, _rate(w), _f(w["cpu_us"]), _f(w["p50_ms"], 1), _f(w["p99_ms"], 1)] for name, w in r["results"].items()]
    head = ["store, workers", "refresh/s med (min-max)", "server CPU us/refresh", "p50 ms", "p99 ms"]
    lines = [
        f"WORKERS (serve --workers 1 and 2, nothing pinned: servers, PostgreSQL and the load generator share "
        f"the cores; {r['connections']} connections, {r['rounds']} interleaved rounds x {r['slice_s']} s)",
        _table(head, rows),
        f"  load generator CPU per refresh: {_f(r.get('loadgen_cpu_us_per_refresh'))} us; "
        f"PostgreSQL's own CPU per refresh: {_f(r.get('postgres_server_cpu_us_per_refresh'))} us",
    ]
    for key, value in r.items():
        if key.endswith("_two_over_one"):
            lines.append(f"  {key.removesuffix('_two_over_one')}: 2 workers / 1 worker = {_f(value, 2)}x by rate")
    if "skipped" in r.get("postgres", {}):
        lines.append(f"  postgres skipped: {r['postgres']['skipped']}")
    return "\n".join(lines)


def _flat(prefix: str, value: Any, out: list[str]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flat(f"{prefix}.{k}" if prefix else str(k), v, out)
    elif isinstance(value, list) and len(value) > 8:
        out.append(f"  {prefix}: [{len(value)} values]")
    else:
        out.append(f"  {prefix}: {value}")


def _other(name: str, r: dict[str, Any]) -> str:
    if "skipped" in r:
        return f"{name.upper()}: skipped ({r['skipped']})"
    lines: list[str] = []
    _flat("", r, lines)
    return f"{name.upper()}\n" + "\n".join(lines)


def render(doc: dict[str, Any]) -> str:
    parts = [_machine(doc)]
    if doc.get("skipped_stacks"):
        parts.append("\n".join(doc["skipped_stacks"]))
    for name, r in doc["results"].items():
        if "failed" in r:
            parts.append(f"{name.upper()}: FAILED ({r['failed']})")
        elif name == "refresh":
            parts.append(_refresh(r))
        elif name == "login":
            parts.append(_login(r))
        elif name == "resource":
            parts.append(_resource(r))
        elif name == "workers" and "results" in r:
            parts.append(_workers(r))
        else:
            parts.append(_other(name, r))
    return "\n\n".join(parts)
