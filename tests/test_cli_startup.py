"""``bitcell-sim run`` imports only what it uses; benchmarks/bench_cli.py runs (speed is never
asserted here, see docs/model.md)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks" / "bench_cli.py"


def test_run_imports_neither_the_load_side_nor_the_devnet_nor_pyplot(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("bench_cli", BENCH)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.unused_modules(ROOT, tmp_path) == []
    argv = bench.cases(ROOT, tmp_path)["run --help"]
    assert bench.time_case(argv, ROOT, tmp_path, repeats=1) > 0
