"""The load benchmark script runs (one tiny level; its figures are not asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_load.py"


@pytest.mark.real
@pytest.mark.timeout(120)
def test_bench_load_smoke() -> None:
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--levels", "20", "--duration", "2", "--n", "50"],
        capture_output=True,
        text=True,
        timeout=100,
        check=True,
    ).stdout
    assert "build one fresh signed tx (no I/O):" in out
    assert "| target TPS | scheduled TPS | achieved TPS |" in out
    assert out.count("\n| 20 | ") == 1
