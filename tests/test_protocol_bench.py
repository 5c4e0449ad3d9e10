"""The protocol benchmark script runs (tiny sizes; its figures are not asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_protocol.py"


@pytest.mark.timeout(120)
def test_bench_protocol_smoke() -> None:
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--n", "100", "--repeats", "1"],
        capture_output=True,
        text=True,
        timeout=100,
        check=True,
    ).stdout
    assert "| operation | median ops/s | min ops/s |" in out
    assert out.count("\n| ") == 8  # the header and seven rows (the rule starts "|-")
