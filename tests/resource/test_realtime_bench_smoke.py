"""bench/realtime.py runs end to end on a handful of sockets (the 10,000 are make bench's job)."""

from __future__ import annotations

from bench.realtime import run


def test_realtime_bench_holds_and_reauthenticates_without_missed_deadlines() -> None:
    # 300: sockets open in batches whose handshakes finish out of order, so a socket's
    # reauth must follow its own user, not its place in the list (20 passed by luck).
    result = run(connections=300, idle=0.5, hold=2.5, ttl=2.0, jitter=0.2)
    assert result["server_open"] == 300
    assert result["kib_per_connection"] > 0
    assert result["reauth_per_s"] > 100  # 300 sockets renewing about every second
    assert result["missed_deadlines"] == 0 and result["ok"], result
