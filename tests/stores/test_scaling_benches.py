"""The scaling benchmarks measure what ``docs/scaling.md`` says they measure.

The figures are ``make bench``'s job; here a very short run must show that
every refresh of ``bench/cluster.py`` was a real rotation on the setup named,
that the 3-shard cluster really spread the work over three masters, and that
``bench/pg_commits.py`` ran the store's rotation against a durable server.
"""

from __future__ import annotations

import pytest

from tests.conftest import need_binary
from tests.stores.servers import find_binary

pytestmark = pytest.mark.slow


def test_cluster_bench_rotates_on_one_and_on_three_shards() -> None:
    need_binary("redis-server")
    need_binary("redis-cli")
    from bench import cluster

    result = cluster.run(rounds=1, slice_s=0.5, services=1, loaders=1, concurrency=4, sessions=20)
    for name in cluster.SETUPS:
        assert result[name]["errors"] == 0, result[name]  # every answer was a rotation
        assert result[name]["refreshes_per_s"] > 0
    assert result["redis"]["master_share"] == [1.0]
    assert result["cluster-1"]["master_share"] == [1.0]
    shares = result["cluster-3"]["master_share"]
    # Sessions hash over 1024 groups: each of the three masters rotates some of them.
    assert len(shares) == 3 and all(s > 0.1 for s in shares), shares
    assert result["ratios"]["cluster-3 / cluster-1, shard-bound rate"] is not None


def test_pg_commits_measures_durable_rotations() -> None:
    for binary in ("initdb", "postgres", "pgbench"):
        need_binary(binary, find_binary(binary) or binary)
    from bench import pg_commits

    result = pg_commits.run(seconds=1, n=2_000)
    assert "fsync=on" in result["settings"] and "synchronous_commit=on" in result["settings"]
    for batch, clients in pg_commits.CONFIGS:
        row = result[f"batch {batch}, {clients} clients"]
        # Both are rounded: they may differ by half a commit of rotations.
        assert abs(row["rotations_per_s"] - row["commits_per_s"] * batch) <= batch / 2 + 1, row
        assert row["rotations_per_s"] > 0
        # Each rotation rewrites one row: WAL per rotation is a row's worth, not zero
        # (an UPDATE that matched nothing would log nothing).
        assert 50 < row["wal_bytes_per_rotation"] < 8192, row
        assert row["server_cpu_us_per_rotation"] > 0
