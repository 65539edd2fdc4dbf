"""bench/resource.py runs end to end and reports both rates (numbers are make bench's job)."""

from __future__ import annotations

from bench.resource import run


def test_resource_bench_reports_protected_and_unprotected_rates() -> None:
    result = run(seconds=0.3, rounds=1, connections=4, warmup=0.1)
    assert result["unprotected_rps"] > 0
    assert result["protected_rps"] > 0
    expected = result["protected_rps"] / result["unprotected_rps"]
    assert abs(result["ratio"] - expected) < 0.01
    assert result["target"] == 0.85
