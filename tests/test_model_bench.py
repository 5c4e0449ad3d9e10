"""Smoke test of benchmarks/bench_model.py: it runs and reports (speed is never asserted)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_model.py"


def test_bench_model_measures_a_short_case() -> None:
    spec = importlib.util.spec_from_file_location("bench_model", BENCH)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    topology = bench.case_topology("rc3-fast", 12.0)
    assert topology.general.duration_s == 12.0 and topology.workload_stages()[0][2] == 100.0
    row = bench.measure(topology, repeats=1)
    assert row["simulated_s"] == 12.0 and row["nodes"] == 7 and row["blocks"] == 3
    assert row["speedup"] == row["simulated_s"] / row["wall_s_median"]
    assert row["events"] > 0 and row["peak_rss_mb"] > 50 and row["links"] == 42  # 21 peer pairs
    generated = bench.case_topology("gen-1x7", 5.0)
    assert len(generated.nodes) == 7 and len(generated.regions) == 7
