"""Smoke test of benchmarks/bench_sweep.py on a 4-run sweep (speed is never asserted)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_sweep.py"


@pytest.mark.real  # a Dask LocalCluster of worker processes
def test_bench_sweep_times_both_ways_and_the_tables_agree() -> None:
    spec = importlib.util.spec_from_file_location("bench_sweep", BENCH)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    grid = ["--set", "duration=20 s", "--set", "tps=50,100", "--replications", "2"]
    row = bench.compare(2, topology="rc3-fast", grid=grid)
    assert row["runs"] == 4 and row["workers"] == 2 and row["tables_equal"] is True
    assert row["serial_wall_s"] > 0 and row["cluster_wall_s"] > 0
    assert row["speedup"] == row["serial_wall_s"] / row["cluster_wall_s"]
